"""The public ECG databases, read from `../shared/data/ecg` and unpacked into a cache.

- MIT-BIH Arrhythmia Database (Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia
  Database. IEEE Eng Med Biol 20(3):45-50, 2001; Goldberger AL et al. PhysioBank,
  PhysioToolkit and PhysioNet. Circulation 101(23):e215-e220, 2000), ODC-By 1.0.
- PhysioNet/Computing in Cardiology Challenge 2017 training set (Clifford GD et al. AF
  classification from a short single lead ECG recording: the PhysioNet/Computing in
  Cardiology Challenge 2017. Computing in Cardiology 44, 2017), ODC-By 1.0.

The archives are checked against their SHA256SUMS and unpacked once into the user's cache
directory (never into the repository). `CLARION_ECG_DATA` names another folder holding the
archives; where none is found, `EcgDataMissing` says where they were looked for.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ATTRIBUTION = {
    "mitdb": "MIT-BIH Arrhythmia Database (Moody & Mark 2001; Goldberger et al. 2000, "
             "PhysioNet), ODC-By 1.0",
    "cinc2017-train": "PhysioNet/CinC Challenge 2017 training set (Clifford et al. 2017), "
                      "ODC-By 1.0",
}

# de Chazal, O'Dwyer & Reilly 2004: the inter-patient split; the paced records
# (102, 104, 107, 217) are in neither.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
       "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
# MIT-BIH records with atrial fibrillation episodes (rhythm annotation "(AFIB").
AF_RECORDS = ("201", "202", "203", "210", "217", "219", "221", "222")
# AAMI EC57 beat classes from the MIT-BIH beat symbols.
AAMI = {"N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
        "A": "S", "a": "S", "J": "S", "S": "S",
        "V": "V", "E": "V", "F": "F", "/": "Q", "f": "Q", "Q": "Q"}
BEAT_CLASSES = ("N", "S", "V", "F", "Q")
RHYTHM_CLASSES = ("N", "A", "O", "~")  # normal, AF, other rhythm, noisy (the challenge's)


class EcgDataMissing(FileNotFoundError):
    """The ECG archives are not where they were looked for."""


def data_dir() -> Path:
    """Where the archives are: `CLARION_ECG_DATA`, else `../shared/data/ecg` beside the
    repository."""
    configured = os.environ.get("CLARION_ECG_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data" / "ecg"


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("CLARION_ECG_CACHE") or user_cache_dir("clarion")) / "ecg"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def database(name: str) -> Path:
    """The unpacked folder of `name` ("mitdb", "cinc2017-train"), unpacking it if needed."""
    target = cache_dir() / name
    if (target / ".unpacked").exists():
        return target
    archive = data_dir() / f"{name}.tar.xz"
    if not archive.exists():
        raise EcgDataMissing(f"{archive} not found: the ECG databases are read from "
                             f"../shared/data/ecg (or set CLARION_ECG_DATA to their folder)")
    sums = data_dir() / "SHA256SUMS"
    if sums.exists():
        expected = {line.split()[1].lstrip("*"): line.split()[0]
                    for line in sums.read_text().splitlines() if line.strip()}
        if archive.name in expected and _sha256(archive) != expected[archive.name]:
            raise EcgDataMissing(f"{archive} does not match its SHA256SUMS: copy it again")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(cache_dir(), filter="data")
    (target / ".unpacked").write_text(archive.name)
    return target


@dataclass(frozen=True, slots=True)
class Record:
    """One lead of one record, in millivolts."""

    name: str
    lead: str
    rate_hz: float
    signal: np.ndarray


def read_record(folder: Path, name: str, lead: str | None = None) -> Record:
    """A WFDB record's lead `lead` (MIT-BIH: "MLII"), else its first."""
    import wfdb

    record = wfdb.rdrecord(str(folder / name))
    names = list(record.sig_name)
    channel = names.index(lead) if lead in names else 0
    return Record(name, names[channel], float(record.fs),
                  np.asarray(record.p_signal[:, channel], dtype=np.float64))


@dataclass(frozen=True, slots=True)
class BeatAnnotations:
    """A record's annotated beats: sample of each R peak and its AAMI class ("" if none)."""

    samples: np.ndarray
    classes: np.ndarray  # str, AAMI class or ""


def read_beats(folder: Path, name: str) -> BeatAnnotations:
    import wfdb

    ann = wfdb.rdann(str(folder / name), "atr")
    samples = np.asarray(ann.sample, dtype=np.int64)
    classes = np.array([AAMI.get(s, "") for s in ann.symbol])
    is_beat = np.array([s in AAMI for s in ann.symbol])
    return BeatAnnotations(samples[is_beat], classes[is_beat])


def read_rhythm(folder: Path, name: str) -> list[tuple[int, str]]:
    """(start sample, rhythm) of each rhythm change, e.g. (0, "N"), (5120, "AFIB")."""
    import wfdb

    ann = wfdb.rdann(str(folder / name), "atr")
    return [(int(s), note.strip("(\x00 ")) for s, sym, note
            in zip(ann.sample, ann.symbol, ann.aux_note, strict=True)
            if sym == "+" and note.startswith("(")]


def cinc_reference(folder: Path) -> list[tuple[str, str]]:
    """(record, class) of the challenge's REFERENCE.csv."""
    rows = []
    for line in (folder / "REFERENCE.csv").read_text().splitlines():
        if line.strip():
            record, label = line.strip().split(",")[:2]
            rows.append((record, label))
    return rows
