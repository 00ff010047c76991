"""The built-in brain-MRI phantom benchmark (exact ground-truth findings and masks)."""

from synthmed.data.phantom.generator import PhantomConfig, generate_phantom

__all__ = ["PhantomConfig", "generate_phantom"]
