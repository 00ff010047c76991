"""``synthmed data``: build, import, split and inspect dataset directories."""

from __future__ import annotations

from pathlib import Path

import typer

import synthmed.cli.console as console

data_app = typer.Typer(help="Build, import, split and inspect dataset directories.", no_args_is_help=True)


# --- import / split / stats --------------------------------------------------------------
# Thin shells: parse flags, call one library function, print a short summary. The library
# modules are imported inside the commands so that `synthmed --help` stays fast.

_FORMATS = "folder, figshare, dicom, nifti, csv"


@data_app.command("import")
def import_command(
    format: str = typer.Option(..., "--format", "-f", help=f"Input format: {_FORMATS}."),
    src: Path = typer.Option(..., "--src", help="Input file or directory."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to write (re-running resumes it)."),
    size: int | None = typer.Option(None, "--size", help="Pad to a square and resize to PX x PX."),
    windowing: str = typer.Option("none", "--windowing", help="none (raw values, 16-bit stays 16-bit), "
                                  "percentile[:LOW:HIGH], window:CENTER:WIDTH[:FUNCTION] "
                                  "(linear_exact, linear, sigmoid) or minmax."),
    bits: int | None = typer.Option(None, "--bits", help="Depth of windowed images: 8 (default) or 16."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first bad input file instead of skipping it."),
    modality: str | None = typer.Option(None, "--modality", help="(folder, nifti, csv) Findings schema to write."),
    axis: int | None = typer.Option(None, "--axis", help="(nifti) Slice axis: 0 sagittal, 1 coronal, 2 axial."),
    labels: Path | None = typer.Option(None, "--labels", help="(nifti) Label volume, or a directory of them."),
    slices: str | None = typer.Option(None, "--slices", help="(nifti) all, nonempty (default) or lesion."),
    patient_regex: str | None = typer.Option(None, "--patient-regex",
                                             help="(nifti) Regex whose first group is the patient id."),
    keep_patient_ids: bool = typer.Option(False, "--keep-patient-ids",
                                          help="(dicom) Keep real Patient IDs (PHI) instead of pseudonyms."),
    id_salt: str | None = typer.Option(None, "--id-salt", envvar="SYNTHMED_ID_SALT",
                                       help="(dicom) Secret key for the patient pseudonyms (HMAC-SHA-256)."),
    dicom_window: bool = typer.Option(False, "--dicom-window",
                                      help="(dicom) Window each image with its own Window Center/Width."),
    image_root: Path | None = typer.Option(None, "--image-root", help="(csv) Folder the image paths are in."),
    image_column: str | None = typer.Option(None, "--image-column", help="(csv) Image column name."),
    text_column: str | None = typer.Option(None, "--text-column", help="(csv) Text column name."),
    delimiter: str | None = typer.Option(None, "--delimiter", help="(csv) Field delimiter (default: sniffed)."),
) -> None:
    """Import a dataset (class folders, figshare .mat, DICOM, NIfTI, image-text CSV)."""

    from synthmed.data.importers import import_dataset

    flags = {
        "modality": modality, "axis": axis, "labels": str(labels) if labels else None, "slices": slices,
        "patient_regex": patient_regex, "keep_patient_ids": keep_patient_ids or None, "id_salt": id_salt,
        "file_window": dicom_window or None, "image_root": str(image_root) if image_root else None,
        "image_column": image_column, "text_column": text_column, "delimiter": delimiter,
    }
    options = {k: v for k, v in flags.items() if v is not None}
    report = import_dataset(format, src, out, size=size, windowing=windowing, bits=bits, strict=strict, **options)
    console.out.print(report.summary(), soft_wrap=True)
    for skipped in report.skipped[:10]:
        console.out.print(f"  skipped: {skipped.reason}", soft_wrap=True)
    if len(report.skipped) > 10:
        console.out.print(f"  ... and {len(report.skipped) - 10} more (see the log above)")


@data_app.command("split")
def split_command(
    root: Path = typer.Argument(..., help="Dataset directory."),
    by: str = typer.Option("patient", "--by", help="Grouping unit; only 'patient' is supported."),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="Train,val,test shares of rows (sum 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed (same seed, same split)."),
    stratify: str = typer.Option("label", "--stratify",
                                 help="Row field to balance (label, findings.tumor_type, ...) or 'none'."),
    keep_existing: bool = typer.Option(False, "--keep-existing",
                                       help="Keep splits rows already have (e.g. Kaggle Training/Testing)."),
) -> None:
    """Assign train/val/test by patient (no patient in two splits) and rewrite the metadata."""
    from synthmed.data.split import split_by_patient
    from synthmed.errors import ConfigError

    if by != "patient":
        raise ConfigError(f"--by {by!r} is not supported; valid: patient")
    report = split_by_patient(root, ratios, seed, None if stratify == "none" else stratify,
                              keep_existing=keep_existing)
    typer.echo(f"split {root}: {report.summary()}")


@data_app.command("stats")
def stats_command(
    root: Path = typer.Argument(..., help="Dataset directory."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the statistics to this JSON file."),
    threshold: int = typer.Option(6, "--threshold", help="Near-duplicate Hamming distance (of 64 hash bits)."),
    duplicates: bool = typer.Option(True, "--duplicates/--no-duplicates",
                                    help="Look for near-duplicate images across splits."),
) -> None:
    """Counts per label, split and finding; patients; image formats; near-duplicates across splits."""

    from synthmed.data.stats import dataset_stats, stats_tables
    from synthmed.utils.provenance import write_json_atomic

    stats = dataset_stats(root, hash_threshold=threshold, near_duplicates=duplicates)
    for table in stats_tables(stats):
        console.out.print(table)
    if json_path is not None:
        write_json_atomic(json_path, stats)
        console.out.print(f"wrote {json_path}", soft_wrap=True)
