"""``synthmed app``: a Gradio app to generate labelled images, localise and explain tumours, and browse runs.

The work is in plain functions (:mod:`synthmed.app.generate`, :mod:`synthmed.app.localize`,
:mod:`synthmed.app.runs`) over :class:`~synthmed.app.models.AppModels`; :mod:`synthmed.app.ui` wires them
into Gradio (the ``[app]`` extra).
"""

from synthmed.app.models import AppConfig, AppModels

__all__ = ["AppConfig", "AppModels"]
