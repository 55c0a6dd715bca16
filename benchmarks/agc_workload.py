"""An AGC-like analysis workload: NanoAOD-like ROOT files written by uproot, and a reader that takes a quarter of the
branches over root:// as an analysis does (coffea/uproot with fsspec-xrootd, uproot's default handler).

The files: an `Events` tree of about 100 branches: event-level scalars (run, lumi block, event number, MET, pile-up,
trigger bits) and jagged collections (Jet, Electron, Muon, Photon, Tau; a counter `nX` and `X_<field>` branches each),
with Poisson multiplicities. Floats keep only 10 to 16 mantissa bits, as NanoAOD stores them, so they compress as
real ones do; compression is ZSTD level 5 (cramjam's, through uproot). Each `extend` writes one basket per branch
(a cluster of `cluster` events), so the branches of a cluster lie interleaved in the file, as in ROOT's own files:
a reader taking a quarter of the branches reads many small ranges spread over the whole file.

Generated once into a cache outside the work tree, keyed by the generator's parameters and version:
`~/.cache/analysis-facility/agc-workload/<key>/` (`AF_WORKLOAD_CACHE` overrides the root), with `manifest.json`
holding each file's size and, per branch, the compressed bytes of its baskets (from the file's own TBranch records):
the bytes an analysis that reads those branches needs, the denominator of the benchmark's byte ratios.

    python benchmarks/agc_workload.py generate [--total-mib N] [--files K]     # prints the dataset folder
    python benchmarks/agc_workload.py read URL... --branches a,b,c             # one reader; JSON on stdout
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

GENERATOR_VERSION = 1
TREE = "Events"
# name: (mean multiplicity, "field:kind ..."); kind f<bits> (float keeping that many mantissa bits), i (int32),
# b (bool), u (uint32), l (int64).
_COLLECTIONS = {
    "Jet": (
        5.0,
        "pt:f12 eta:f12 phi:f12 mass:f10 btagDeepFlavB:f10 btagDeepFlavCvL:f10 chEmEF:f10 chHEF:f10 "
        "neEmEF:f10 neHEF:f10 area:f10 rawFactor:f10 jetId:i puId:i nConstituents:i hadronFlavour:i "
        "partonFlavour:i genJetIdx:i",
    ),
    "Electron": (
        1.2,
        "pt:f12 eta:f12 phi:f12 mass:f10 charge:i dxy:f10 dz:f10 pfRelIso03_all:f10 sip3d:f10 "
        "mvaFall17V2Iso:f10 cutBased:i deltaEtaSC:f10 hoe:f10 r9:f10 sieie:f10 mvaFall17V2Iso_WP90:b",
    ),
    "Muon": (
        1.5,
        "pt:f12 eta:f12 phi:f12 mass:f10 charge:i dxy:f10 dz:f10 pfRelIso04_all:f10 sip3d:f10 tightId:b "
        "mediumId:b looseId:b nStations:i nTrackerLayers:i segmentComp:f10 ptErr:f10",
    ),
    "Photon": (
        0.8,
        "pt:f12 eta:f12 phi:f12 hoe:f10 r9:f10 sieie:f10 pfRelIso03_all:f10 cutBased:i mvaID:f10 electronVeto:b",
    ),
    "Tau": (
        0.7,
        "pt:f12 eta:f12 phi:f12 mass:f10 charge:i decayMode:i idDeepTau2017v2p1VSjet:i "
        "idDeepTau2017v2p1VSe:i idDeepTau2017v2p1VSmu:i dz:f10",
    ),
}
_SCALARS = (
    "run:u luminosityBlock:u event:l MET_pt:f12 MET_phi:f12 MET_sumEt:f12 MET_significance:f10 PuppiMET_pt:f12 "
    "PuppiMET_phi:f12 PV_npvs:i PV_npvsGood:i PV_z:f10 fixedGridRhoFastjetAll:f10 Pileup_nTrueInt:f10 genWeight:f10 "
    "L1PreFiringWeight_Nom:f10 HLT_IsoMu24:b HLT_IsoMu27:b HLT_Mu50:b HLT_Ele32_WPTight_Gsf:b HLT_Ele35_WPTight_Gsf:b "
    "HLT_Photon200:b HLT_PFJet500:b HLT_PFHT1050:b HLT_PFMET120_PFMHT120_IDTight:b HLT_DoubleEle33_CaloIdL_MW:b "
    "HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ:b HLT_Ele23_Ele12_CaloIdL_TrackIdL_IsoVL:b "
    "HLT_Mu23_TrkIsoVVL_Ele12_CaloIdL_TrackIdL_IsoVL_DZ:b HLT_PFHT890:b Flag_goodVertices:b "
    "Flag_globalSuperTightHalo2016Filter:b Flag_HBHENoiseFilter:b Flag_EcalDeadCellTriggerPrimitiveFilter:b "
    "Flag_BadPFMuonFilter:b Flag_eeBadScFilter:b"
)


def _fields(text: str) -> list[tuple[str, str]]:
    return [tuple(item.split(":")) for item in text.split()]  # type: ignore[misc]


COLLECTIONS: dict[str, tuple[float, list[tuple[str, str]]]] = {
    name: (mean, _fields(text)) for name, (mean, text) in _COLLECTIONS.items()
}
SCALARS: list[tuple[str, str]] = _fields(_SCALARS)


@dataclass(frozen=True)
class Params:
    """What the dataset is made of; its cache key."""

    total_mib: int = 1100
    files: int = 8
    cluster: int = 20000
    compression: str = "ZSTD"
    level: int = 5
    seed: int = 18

    def key(self) -> str:
        text = json.dumps({**asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("AF_WORKLOAD_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "analysis-facility", "agc-workload"
    )
    return Path(base)


def branch_names() -> list[str]:
    """Every branch of the tree, in the order written."""
    names = [name for name, _ in SCALARS]
    for coll, (_, fields) in COLLECTIONS.items():
        names += [f"n{coll}", *(f"{coll}_{f}" for f, _ in fields)]
    return names


def analysis_branches() -> list[str]:
    """What the analysis reads, a quarter of the branches as an AGC-style analysis does: the kinematics and IDs of
    each collection (the first quarter of its fields and its counter), MET, the weights and a few triggers."""
    chosen = ["MET_pt", "MET_phi", "genWeight", "PV_npvsGood", "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf"]
    for coll, (_, fields) in COLLECTIONS.items():
        chosen += [f"n{coll}", *(f"{coll}_{f}" for f, _ in fields[: max(1, len(fields) // 4)])]
    return chosen


def _values(rng: Any, kind: str, n: int) -> Any:
    import numpy as np

    if kind.startswith("f"):
        bits = int(kind[1:])
        x = rng.lognormal(3.0, 1.0, n).astype(np.float32) * rng.choice(np.array([-1, 1], np.float32), n)
        raw = x.view(np.uint32) & np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)  # NanoAOD-style precision
        return raw.view(np.float32)
    if kind == "i":
        return rng.poisson(3.0, n).astype(np.int32)
    if kind == "b":
        return rng.random(n) < 0.3
    if kind == "u":
        return np.full(n, 1, np.uint32)
    if kind == "l":
        return np.arange(n, dtype=np.int64)
    raise ValueError(kind)


def _cluster(rng: Any, events: int, first_event: int) -> dict[str, Any]:
    import awkward as ak
    import numpy as np

    data = {}
    for name, kind in SCALARS:
        data[name] = _values(rng, kind, events)
    data["run"] = np.full(events, 362000 + first_event // 10**6, np.uint32)
    data["luminosityBlock"] = (np.arange(first_event, first_event + events) // 1000).astype(np.uint32)
    data["event"] = np.arange(first_event, first_event + events, dtype=np.int64)
    for coll, (mean, fields) in COLLECTIONS.items():
        counts = rng.poisson(mean, events)
        total = int(counts.sum())
        data[coll] = ak.zip({f: ak.unflatten(_values(rng, kind, total), counts) for f, kind in fields})
    return data


def generate(params: Params, log: TextIO = sys.stderr) -> Path:
    """The dataset's folder, generated first if not cached (complete or absent: written to a partial folder)."""
    import numpy as np
    import uproot

    out = cache_root() / f"nano-{params.key()}"
    if (out / "manifest.json").exists():
        return out
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        for f in partial.iterdir():
            f.unlink()
    partial.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    rng = np.random.default_rng(params.seed)
    per_file = params.total_mib * 2**20 // params.files
    compression = getattr(uproot, params.compression)(params.level)
    first_event = 0
    for index in range(params.files):
        path = partial / f"nano-{index:03d}.root"
        with uproot.recreate(path, compression=compression) as f:
            f.mktree(TREE, {k: v.type if hasattr(v, "layout") else v.dtype for k, v in _cluster(rng, 1, 0).items()})
            while path.stat().st_size < per_file:
                f[TREE].extend(_cluster(rng, params.cluster, first_event))
                first_event += params.cluster
        print(f"  wrote {path.name}: {path.stat().st_size / 2**20:.0f} MiB", file=log)
    manifest = {"params": asdict(params), "tree": TREE, "files": {}}
    for path in sorted(partial.glob("*.root")):
        with uproot.open(path) as f:
            tree = f[TREE]
            branches = {b.name: int(sum(b.member("fBasketBytes")[: b.num_baskets])) for b in tree.branches}
            manifest["files"][path.name] = {"size": path.stat().st_size, "entries": tree.num_entries,
                                            "branch_bytes": branches}  # fmt: skip
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    partial.rename(out)
    print(f"  generated {params.files} files in {time.monotonic() - start:.0f} s into {out}", file=log)
    return out


def needed_bytes(manifest: dict, branches: list[str], files: list[str] | None = None) -> int:
    """Compressed basket bytes of `branches` in `files` (all by default): what a perfect reader fetches."""
    chosen = manifest["files"] if files is None else {f: manifest["files"][f] for f in files}
    return sum(info["branch_bytes"][b] for info in chosen.values() for b in branches)


# -- the reader ------------------------------------------------------------------------------------------------------


def sched_seconds() -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of this process's live threads, from the scheduler's
    own accounting (/proc/self/task/*/schedstat): on a shared machine the second says how much of a reader's wall
    time went to waiting for a core rather than for data."""
    cpu = wait = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
        cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    return cpu / 1e9, wait / 1e9


def read(urls: list[str], branches: list[str]) -> dict:
    """Read `branches` of every file as an analysis does (all entries, into awkward arrays). Returns timings, CPU
    time, time spent waiting for a CPU and the in-memory bytes."""
    import resource

    import uproot

    usage, sched = resource.getrusage(resource.RUSAGE_SELF), sched_seconds()
    start = time.time()
    events, nbytes = 0, 0
    for url in urls:
        with uproot.open(url, timeout=120) as f:
            arrays = f[TREE].arrays(branches, how=dict)
            events += len(next(iter(arrays.values())))
            nbytes += sum(a.nbytes if hasattr(a, "nbytes") else 0 for a in arrays.values())
    end, after, sched_after = time.time(), resource.getrusage(resource.RUSAGE_SELF), sched_seconds()
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    waited = sched_after[1] - sched[1]
    return {"start": start, "end": end, "cpu": cpu, "cpu_wait": waited, "events": events, "array_bytes": nbytes,
            "files": len(urls)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--total-mib", type=int, default=Params.total_mib)
    gen.add_argument("--files", type=int, default=Params.files)
    gen.add_argument("--cluster", type=int, default=Params.cluster)
    rd = sub.add_parser("read")
    rd.add_argument("urls", nargs="+")
    rd.add_argument("--branches", required=True)
    sub.add_parser("serve", help="print `ready`, then for each JSON line {urls, branches} on stdin read and print")
    args = top.parse_args(argv)
    if args.command == "generate":
        print(generate(Params(total_mib=args.total_mib, files=args.files, cluster=args.cluster)))
    elif args.command == "read":
        print(json.dumps(read(args.urls, args.branches.split(","))), flush=True)
    else:
        import uproot  # noqa: F401  (imported before `ready`: a job's time is reading, not starting Python)

        print("ready", flush=True)
        for line in sys.stdin:
            job = json.loads(line)
            print(json.dumps(read(job["urls"], job["branches"])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
