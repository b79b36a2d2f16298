"""Re-take the MLflow UI screenshots of the README (docs/img/mlflow-runs.png, docs/img/mlflow-run.png).

Why a script: what the MLflow 3.17 UI shows depends on the browser's stored choices (GenAI or
"Model training", the runs table's columns), so a hand-made screenshot cannot be reproduced. This one
starts from a fresh browser profile and opens only the addresses the README gives a user.

It trains a few tiny toy runs into a temporary results folder (a two-seed ProtoNet group, ProtoNet with
the OTAM matcher, a 5-shot run; about 3 minutes on one CPU core), serves that MLflow store on 127.0.0.1,
and photographs, in headless Chromium,
  1. the runs list: `#/experiments/<id>/runs?workflowType=machine_learning&viewStateShareKey=fsar-leaderboard`
     (the classic view with the "fsar-bench leaderboard" view fsar-bench saves in every experiment:
     sorted by accuracy, accuracy / ci95 / method / matcher / dataset / way / shot / preset columns);
  2. the page of the most accurate run (datasets, tags, metrics).

Playwright is not a dependency of fsar-bench: install it in a separate virtual environment, outside
the repository, and point it at a Chromium (the system one, or `playwright install chromium`):

    python3 -m venv /work/pwvenv && /work/pwvenv/bin/pip install playwright pillow
    /work/pwvenv/bin/python docs/img/make_screenshots.py --fsar-bin .venv/bin --chromium /usr/bin/chromium

`--fsar-bin` is the bin folder of the environment where fsar-bench and mlflow are installed.
Pillow (optional) shrinks the PNGs to a 256-colour palette (each stays under 300 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TINY = ["--dataset", "toy-appearance", "--preset", "tiny", "--steps", "20", "--episodes", "200"]
RUNS = [["--seeds", "2"], ["--matcher", "otam"], ["--shot", "5"]]  # each: fsar-bench run protonet TINY + these
VIEW_QUERY = "workflowType=machine_learning&viewStateShareKey=fsar-leaderboard"  # = tracking.RUNS_VIEW_QUERY
WIDTH = 1600


def make_runs(fsar_bin: Path, results: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for extra in RUNS:
        cmd = [str(fsar_bin / "fsar-bench"), "run", "protonet", *TINY, *extra, "--results-dir", str(results)]
        print("+", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, check=True, env=env, cwd=results.parent, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (our own 127.0.0.1 server)
        return json.load(resp)


def serve(fsar_bin: Path, db: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1 with one worker (the default four time out on a loaded 2-core machine)
    and without its job runner (a dozen busy huey processes the screenshots do not need)."""
    cmd = [str(fsar_bin / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job consumers
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    for _ in range(180):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)  # noqa: S310
            return proc
        except OSError:
            time.sleep(2)
    stop(proc)
    raise SystemExit("mlflow server did not answer within 6 minutes")


def stop(proc: subprocess.Popen) -> None:
    """End the server and its uvicorn workers (its own process group, started above)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def best_run(base: str, exp_id: str) -> str:
    """The most accurate single run (not a seed group's parent run)."""
    runs = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100,
                                                     "order_by": ["metrics.accuracy DESC"]})["runs"]
    singles = [r for r in runs if any(t["key"] == "fsar.run_key" for t in r["data"].get("tags", []))]
    return singles[0]["info"]["run_id"]


def shoot(chromium: str, base: str, exp_id: str, run_id: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium or None, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 640})  # a fresh profile: nothing stored
        page.goto(f"{base}/#/experiments/{exp_id}/runs?{VIEW_QUERY}", timeout=300_000)
        page.get_by_text("matching runs").wait_for(timeout=300_000)
        for label in ("Close", "Hide banner"):  # the MLflow Assistant panel, the "shared view" banner
            page.get_by_role("button", name=label, exact=True).first.click()
        page.wait_for_timeout(2000)
        page.screenshot(path=HERE / "mlflow-runs.png")
        page.set_viewport_size({"width": WIDTH, "height": 1250})
        page.goto(f"{base}/#/experiments/{exp_id}/runs/{run_id}?workflowType=machine_learning", timeout=300_000)
        page.get_by_text("About this run").wait_for(timeout=300_000)
        page.get_by_text("ci95", exact=True).first.wait_for(timeout=300_000)
        close = page.get_by_role("button", name="Close", exact=True)
        if close.count():
            close.first.click()
        page.wait_for_timeout(2000)
        page.screenshot(path=HERE / "mlflow-run.png")
        browser.close()


def shrink(path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    print(f"{path.name}: {path.stat().st_size // 1024} KB", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsar-bin", type=Path, default=Path(sys.prefix) / "bin",
                    help="bin folder holding fsar-bench and mlflow (default: this interpreter's)")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable ('' = Playwright's own)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsar-shots-") as tmp:
        results = Path(tmp) / "fsar-runs"
        make_runs(args.fsar_bin, results)
        port = free_port()
        server = serve(args.fsar_bin, results / "mlflow.db", port)
        try:
            base = f"http://127.0.0.1:{port}"
            exp_id = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=fsar-bench")["experiment"][
                "experiment_id"]
            shoot(args.chromium, base, exp_id, best_run(base, exp_id))
        finally:
            stop(server)
    for name in ("mlflow-runs.png", "mlflow-run.png"):
        shrink(HERE / name)


if __name__ == "__main__":
    main()
