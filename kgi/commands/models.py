"""The model registry: list, show, push and pull model versions (a local folder or s3://bucket/prefix).

A version is a model version folder plus a manifest.json (sha256 and size of every file, the version's
settings, the training run of each stage, metrics). Pushing uploads the files, then the manifest; pulling
verifies every file and refuses one that does not match. Wherever a version is named, NAME@sha256:DIGEST
(what `show` prints as `pin`) pins it to one content, refused once the name is pushed again. The registry is
--registry, else $KGI_REGISTRY, else the local models folder where kgi export writes versions: the repository's
models/ in a checkout, ~/.local/share/kgi/models ($XDG_DATA_HOME/kgi/models) when installed from a wheel. S3 takes
the usual AWS variables (AWS_ENDPOINT_URL for MinIO or moto, AWS_PROFILE / AWS_ACCESS_KEY_ID, AWS_DEFAULT_REGION).

Examples:
  kgi models list
  kgi models show default
  kgi models push models/default --registry s3://kgi-models                       # publish the shipped version
  kgi models push runs/export/v2 --name v2 --metrics reports/v2-metrics.json --registry s3://kgi-models
  kgi models pull v2 /tmp/kgi-v2 --registry s3://kgi-models                      # download and verify
  kgi models pull v2@sha256:<digest> /tmp/kgi-v2 --registry s3://kgi-models     # only that exact content
  KGI_REGISTRY=s3://kgi-models kgi models list
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

from kgi.cli import CommandError
from kgi.shipped import LOCAL_MODELS_DIR

HELP = "model registry: list | show | push | pull versions (local folder or s3://)"
REGISTRY_VARIABLE = "KGI_REGISTRY"
DEFAULT_REGISTRY = LOCAL_MODELS_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    registry = argparse.ArgumentParser(add_help=False)
    registry.add_argument("--registry", metavar="URI", default=None,
                          help=f"registry root, a folder or s3://bucket/prefix (default: ${REGISTRY_VARIABLE}, "
                               f"else {DEFAULT_REGISTRY})")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[registry], help="the published versions, one line each")
    show = actions.add_parser("show", parents=[registry], help="a version's manifest (settings, runs, metrics)")
    show.add_argument("name", metavar="NAME", help="a version's name, or NAME@sha256:DIGEST")
    show.add_argument("--files", action="store_true", help="also list every file with its sha256")
    push = actions.add_parser("push", parents=[registry], help="publish a model version folder")
    push.add_argument("directory", type=Path, metavar="DIR", help="model version folder (kgi export writes them)")
    push.add_argument("--name", help="name in the registry (default: the folder's name)")
    push.add_argument("--metrics", type=Path, metavar="FILE", help="JSON or YAML mapping of figures to record")
    push.add_argument("--force", action="store_true", help="replace an existing version of that name")
    pull = actions.add_parser("pull", parents=[registry], help="download a version and verify every file")
    pull.add_argument("name", metavar="NAME", help="a version's name, or NAME@sha256:DIGEST")
    pull.add_argument("destination", type=Path, metavar="DIR", help="folder to create (kgi tryon --version DIR)")
    pull.add_argument("--force", action="store_true", help="replace DIR if it holds something else")


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


def _list(registry) -> None:
    manifests = registry.list()
    if not manifests:
        print(f"{registry.storage.uri()}: no versions")
        return
    rows = [("NAME", "CREATED", "SIZE", "SAMPLER", "TRAINED STEPS")]
    for m in manifests:
        sampler = m.version.get("sampler", {})
        steps = ", ".join(f"{stage} {run.get('step', '?')}" for stage, run in m.version.get("provenance", {}).items())
        rows.append((m.name, m.created, _size(m.total_bytes),
                     f"{sampler.get('scheduler', '?')} x{sampler.get('num_steps', '?')}", steps or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


def _show(registry, reference: str, with_files: bool) -> None:
    from kgi.registry import parse_reference

    manifest = registry.show(reference)
    name, _ = parse_reference(reference)
    doc = {"name": name, "registry": registry.storage.uri(name), "created": manifest.created,
           "digest": manifest.digest(), "pin": f"{name}@sha256:{manifest.digest()}",
           "size": _size(manifest.total_bytes),
           "stages": {stage: f"{s['files']} file(s), {_size(s['bytes'])}" for stage, s in manifest.stages.items()},
           "version": manifest.version, "metrics": manifest.metrics}
    if with_files:
        doc["files"] = {rel: f"{entry.sha256}  {entry.size}" for rel, entry in manifest.files.items()}
    print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")


def _read_metrics(path: Path) -> dict:
    try:
        metrics = yaml.safe_load(path.read_text())  # YAML reads JSON too
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"--metrics: cannot read {path}: {exc}") from None
    if not isinstance(metrics, dict):
        raise CommandError(f"--metrics: {path} must hold a mapping of figures, e.g. {{\"keypoint_error\": 0.01}}")
    try:
        json.dumps(metrics)
    except TypeError as exc:
        raise CommandError(f"--metrics: {path}: {exc}") from None
    return metrics


def run(args: argparse.Namespace) -> int:
    from kgi.registry import ModelRegistry

    root = args.registry or os.environ.get(REGISTRY_VARIABLE) or str(DEFAULT_REGISTRY)
    try:
        registry = ModelRegistry(root)
        if args.action == "list":
            _list(registry)
        elif args.action == "show":
            _show(registry, args.name, args.files)
        elif args.action == "push":
            metrics = _read_metrics(args.metrics) if args.metrics else None
            manifest = registry.push(args.directory, args.name, metrics=metrics, overwrite=args.force)
            print(f"pushed {manifest.name}: {len(manifest.files)} files, {_size(manifest.total_bytes)} -> "
                  f"{registry.storage.uri(manifest.name)}")
        else:
            folder = registry.pull(args.name, args.destination, overwrite=args.force)
            print(f"pulled {args.name} into {folder} (every file verified)")
    except (ValueError, OSError) as exc:  # RegistryError and StoragePathError are ValueErrors
        raise CommandError(str(exc)) from None
    return 0
