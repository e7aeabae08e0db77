"""The run directory: config, events, checkpoints and the result, written so that nothing is lost or mixed.

Layout::

    config.json           the validated config
    events.jsonl          one JSON object a line: every probe and every epoch
    checkpoints/last.pt   full state at the last epoch boundary (for resume)
    checkpoints/best.pt   weights of the checkpoints selected on the val split
    result.json           the RunResult
    probe_cache/          probe embeddings (``config.probe_cache``)
    pid_atoms.png, accuracy.png

Every file is written to a temporary name in the same folder and renamed over the old one, so
a process killed mid-write leaves the previous version whole.  Events are appended one complete
line per ``write``; the checkpoint records how many events precede it, and a resume keeps exactly
those (it refuses when fewer are there, or one of them is damaged).  A resume also refuses a
missing or unreadable ``config.json``, ``events.jsonl`` or ``checkpoints/last.pt``, and a
``config.json`` that differs from the config the checkpoint was taken under.  A new run refuses a
folder that already holds a run's files unless ``overwrite=True``.

Only the writer (rank 0 of a torchrun job) touches files; the other ranks keep the same counters.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import torch

__all__ = ["RunDir", "RunDirError", "jsonable", "atomic_write_text", "atomic_save"]

#: what a run writes (a folder holding any of these holds a run)
RUN_FILES = ("config.json", "events.jsonl", "checkpoints", "result.json", "probe_cache",
             "pid_atoms.png", "accuracy.png")
#: config fields that may differ between a run and its resume (they do not change the numbers)
VOLATILE = ("out", "progress", "plots", "num_threads")


class RunDirError(ValueError):
    """A run directory that cannot be started or resumed; the message names the file and the problem."""


def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _tmp(path: str) -> str:
    return f"{path}.tmp{os.getpid()}"


def atomic_write_text(path: str, text: str) -> None:
    tmp = _tmp(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save(obj, path: str) -> None:
    tmp = _tmp(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def move_aside(path: str) -> str:
    """Rename the run folder ``path`` to the first free ``path.replaced-N`` (nothing is deleted) and
    warn; returns the new path.  For callers that replace a whole run they own (compare, grid)."""
    n = 1
    while os.path.exists(f"{path}.replaced-{n}"):
        n += 1
    dest = f"{path}.replaced-{n}"
    os.rename(path, dest)
    warnings.warn(f"{path} held an unfinished or different run: moved to {dest}", stacklevel=3)
    return dest


def _identity(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in VOLATILE}


class RunDir:
    """One run's folder.  ``writer=False`` (ranks > 0) keeps the counters and writes nothing."""

    def __init__(self, path: str, *, writer: bool = True):
        self.path, self.writer = path, writer
        self.n_events = 0

    def file(self, *parts) -> str:
        return os.path.join(self.path, *parts)

    @property
    def last(self) -> str:
        return self.file("checkpoints", "last.pt")

    @property
    def best_path(self) -> str:
        return self.file("checkpoints", "best.pt")

    # ------------------------------------------------------------------ a new run
    def create(self, config: dict, *, overwrite: bool = False) -> None:
        """Make the folder for a new run and write ``config.json`` and an empty ``events.jsonl``."""
        p = self.path
        if os.path.exists(p) and not os.path.isdir(p):
            raise RunDirError(f"run directory {p!r} is a file, not a folder; choose another out")
        found = [n for n in RUN_FILES if os.path.exists(os.path.join(p, n))]
        if found and not overwrite:
            what = "already holds a run" if "config.json" in found else f"holds files of a run ({', '.join(found)})"
            raise RunDirError(f"run directory {p!r} {what}; resume it, choose another out, or pass overwrite=True "
                              "(--overwrite) to replace it")
        if not self.writer:
            return
        try:
            for n in found:
                q = os.path.join(p, n)
                shutil.rmtree(q) if os.path.isdir(q) else os.remove(q)
            os.makedirs(self.file("checkpoints"), exist_ok=True)
            atomic_write_text(self.file("events.jsonl"), "")
            atomic_write_text(self.file("config.json"), json.dumps(config, indent=2))
        except OSError as e:
            raise RunDirError(f"cannot create run directory {p!r}: {e.strerror or e}") from None

    # --------------------------------------------------------------------- resume
    def check_resume(self) -> tuple:
        """Verify the folder before a resume; ``(config dict, checkpoint state)`` or a RunDirError."""
        p = self.path
        if not os.path.isdir(p):
            raise RunDirError(f"cannot resume {p!r}: " + ("it is a file, not a run directory" if os.path.exists(p)
                                                          else "no such folder"))
        cfg_path = self.file("config.json")
        if not os.path.isfile(cfg_path):
            raise RunDirError(f"cannot resume {p!r}: config.json is missing")
        try:
            with open(cfg_path) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise RunDirError(f"cannot resume {p!r}: config.json is not valid JSON ({e})") from None
        if not isinstance(config, dict):
            raise RunDirError(f"cannot resume {p!r}: config.json does not hold a mapping")
        state = self._load(self.last, "checkpoints/last.pt")
        if not isinstance(state, dict) or "n_events" not in state or "config" not in state:
            raise RunDirError(f"cannot resume {p!r}: checkpoints/last.pt is not a checkpoint of this program")
        diff = sorted(k for k in set(_identity(config)) | set(_identity(state["config"]))
                      if config.get(k) != state["config"].get(k))
        if diff:
            raise RunDirError(f"cannot resume {p!r}: config.json differs from the config of checkpoints/last.pt "
                              f"in {diff}; restore config.json or start a new run")
        self._events_upto(state["n_events"])
        if state.get("best"):
            self._load(self.best_path, "checkpoints/best.pt")
        return config, state

    def _load(self, path: str, what: str):
        if not os.path.isfile(path):
            raise RunDirError(f"cannot resume {self.path!r}: {what} is missing")
        try:
            return torch.load(path, weights_only=False, map_location="cpu")
        except Exception as e:   # torch raises several types for a damaged file
            raise RunDirError(f"cannot resume {self.path!r}: {what} is corrupt or truncated "
                              f"({type(e).__name__})") from None

    def _events_upto(self, n: int) -> list:
        path = self.file("events.jsonl")
        if not os.path.isfile(path):
            raise RunDirError(f"cannot resume {self.path!r}: events.jsonl is missing "
                              f"(the checkpoint follows {n} events)")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        complete = lines[:-1]          # the part after the last newline is an unfinished line
        if len(complete) < n:
            raise RunDirError(f"cannot resume {self.path!r}: events.jsonl has {len(complete)} complete events, "
                              f"the checkpoint follows {n}; events were lost")
        for i, line in enumerate(complete[:n]):
            try:
                json.loads(line)
            except ValueError:
                raise RunDirError(f"cannot resume {self.path!r}: events.jsonl line {i + 1} is damaged "
                                  "(not one JSON object)") from None
        return complete[:n]

    def trim_events(self, n: int) -> None:
        """Keep the first ``n`` events (those before the checkpoint); later ones are re-made by the resume."""
        if self.writer:
            kept = self._events_upto(n)
            atomic_write_text(self.file("events.jsonl"), "".join(line.decode() + "\n" for line in kept))
        self.n_events = n

    # --------------------------------------------------------------------- writes
    def event(self, ev: dict) -> None:
        """Append one event as one complete line."""
        if self.writer:
            line = (json.dumps(jsonable(ev)) + "\n").encode()
            fd = os.open(self.file("events.jsonl"), os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        self.n_events += 1

    def save_checkpoint(self, state: dict) -> None:
        if self.writer:
            atomic_save({**state, "n_events": self.n_events}, self.last)

    def load_checkpoint(self) -> dict:
        return self._load(self.last, "checkpoints/last.pt")

    def save_best(self, key: str, weights: dict) -> None:
        """Store ``weights`` (name -> state_dict) under ``key`` in ``checkpoints/best.pt``."""
        if self.writer:
            best = torch.load(self.best_path, weights_only=False) if os.path.exists(self.best_path) else {}
            best[key] = weights
            atomic_save(best, self.best_path)

    def load_best(self) -> dict:
        return torch.load(self.best_path, weights_only=False, map_location="cpu")

    def write_result(self, result: dict) -> None:
        if self.writer:
            atomic_write_text(self.file("result.json"), json.dumps(jsonable(result), indent=2))

    def save_arrays(self, name: str, **arrays) -> None:
        """``probe_cache/NAME.npz`` (atomically)."""
        if self.writer:
            d = self.file("probe_cache")
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, name + ".npz")
            tmp = _tmp(path) + ".npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
