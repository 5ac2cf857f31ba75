"""Search spaces in specs, `check` of a space, and `archdsl sweep` on Optuna: static limits,
concrete trial specs, training with pruning, resuming, shared storage and retried trials."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archdsl import ir
from archdsl.cli import main
from archdsl.compile import compile_file, compile_source
from archdsl.explore import Family, survey
from archdsl.lang.space import space_of

from conftest import ROOT

NB201 = json.loads((ROOT / "tests" / "data" / "nas_bench_201.json").read_text())
SPACE = """\
block unit(width) { conv(width, 3, pad = 1); relu }
network net(depth = choice(1, 2, 3), width = int_range(4, 12, step = 4),
            kinds = each(2, choice("a", "b")), mix = (1, choice(2, 3)), rate = log_range(1e-3, 1e-1)) {
    input image: 3 x 16 x 16
    repeat depth as i { if kinds[min(i, 1)] == "a" { unit(width) } else { unit(2 * width) } }
    global_avgpool
    flatten
    linear(mix[1])
}
"""
SMALL = """\
network tiny(width = choice(4, 8), depth = 1, classes = 6) {
    input image: 3 x 16 x 16
    repeat depth { conv(width, 3, pad = 1); relu }
    global_avgpool
    flatten
    linear(classes)
}
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cell_ops(arch: str) -> tuple[str, ...]:
    """A NAS-Bench-201 architecture string's six operations, in the spec's edge order."""
    return tuple(edge.split("~")[0] for node in arch.strip("|").split("|+|")
                 for edge in node.split("|"))


# ---- the space in the language -----------------------------------------------------------


def test_a_space_lists_its_dimensions_in_the_order_written():
    program = compile_source(SPACE).program
    space = space_of(program.networks["net"])
    assert space.names == ("depth", "width", "kinds[0]", "kinds[1]", "mix[1]", "rate")
    assert [d.size for d in space.dimensions] == [3, 3, 2, 2, 2, None]
    assert space.size is None  # a continuous range
    member = {"depth": 2, "width": 8, "kinds[0]": "b", "kinds[1]": "a", "mix[1]": 3,
              "rate": 0.01}
    assert space.settings(member) == {"depth": 2, "width": 8, "rate": 0.01,
                                      "kinds": ("b", "a"), "mix": (1, 3)}


def test_the_spec_alone_is_its_default_member():
    result = compile_source(SPACE)
    assert result.ok
    # depth 1, width 4, kinds ("a", "a"), mix (1, 2): one conv of 4, a linear of 2
    assert [node.op for node in ir.nodes(result.graph)] == [
        "input", "conv", "relu", "global_avgpool", "flatten", "linear"]
    assert result.graph.nodes["4"]["shape"] == (2,)


def test_members_compile_with_their_values():
    family = Family(_write(SPACE))
    member = family.member({"depth": 3, "width": 12, "kinds[0]": "a", "kinds[1]": "b",
                            "mix[1]": 3, "rate": 0.05})
    convs = [node.name for node in ir.nodes(member.graph) if node.op == "conv"]
    assert [member.graph.nodes[n]["shape"][0] for n in convs] == [12, 24, 24]
    assert member.costs["params"] == sum(
        member.graph.nodes[n]["cost"].params for n in member.graph)


@pytest.mark.parametrize("text, message", [
    ("network n(w = 2 * choice(1, 2)) { input x: 3 x 8 x 8; conv(w, 1) }",
     "only a network parameter's default"),
    ("block b(w = choice(1, 2)) { conv(w, 1) }\nnetwork n { input x: 3 x 8 x 8; b }",
     "only a network parameter's default"),
    ("network n(w = choice()) { input x: 3 x 8 x 8; conv(w, 1) }", "one or more values"),
    ("network n(w = choice(1, 1)) { input x: 3 x 8 x 8; conv(w, 1) }", "twice"),
    ("network n(w = choice(1, 1 + 1)) { input x: 3 x 8 x 8; conv(w, 1) }", "written out"),
    ("network n(w = int_range(8, 2)) { input x: 3 x 8 x 8; conv(w, 1) }", "empty"),
    ("network n(w = int_range(2, 8.5)) { input x: 3 x 8 x 8; conv(w, 1) }", "integers"),
    ("network n(r = log_range(0, 1)) { input x: 3 x 8 x 8; conv(2, 1) }", "above 0"),
    ("network n(r = float_range(0.1, 0.5, step = 1)) { input x: 3 x 8 x 8; conv(2, 1) }",
     "no keyword"),
    ("network n(w = each(0, choice(1, 2))) { input x: 3 x 8 x 8; conv(2, 1) }", "count"),
    ("network n(w = each(2, each(2, choice(1, 2)))) { input x: 3 x 8 x 8; conv(2, 1) }",
     "one choice or range"),
    ("def choice(x) = x\nnetwork n { input x: 3 x 8 x 8; conv(2, 1) }", "built-in"),
])
def test_a_space_written_wrongly_is_E0224_at_its_place(text, message):
    result = compile_source(text, "bad.arch")
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert errors and message in errors[0].message
    assert errors[0].code in ("E0224", "E0208")


# ---- check of a space --------------------------------------------------------------------


def test_check_reports_the_size_and_the_cost_range(capsys, tmp_path):
    path = _write(SPACE.replace(", rate = log_range(1e-3, 1e-1)", ""), tmp_path)
    code, out, _ = run(capsys, "check", path, "--sample", "200")
    assert code == 0
    assert "search space (72 members)" in out
    members = survey(Family(path), 200)
    low = min(m.costs["params"] for m in members)
    high = max(m.costs["params"] for m in members)
    assert len(members) == 72 and "costs over all 72 members" in out
    assert low < high and f"params {low}" in out


def test_check_finds_the_members_that_do_not_check(capsys):
    code, out, err = run(capsys, "check", ROOT / "specs" / "cifar_resnet.arch",
                         "--network", "cifar_resnet", "--set", "classes=10")
    assert code == 0 and "search space" not in out  # no space: one line, as before
    path = _write("""\
network n(depth = choice(20, 21, 32)) {
    input image: 3 x 32 x 32
    let n = (depth - 2) / 6
    repeat n { conv(8, 3, pad = 1) }
}
""")
    code, out, err = run(capsys, "check", path)
    assert code == 1
    assert "error[E0205]" in err and "checked with --set depth=21" in err
    assert "1 of all 3 members do not check" in out
    code, out, _ = run(capsys, "check", path, "--format", "json")
    report = json.loads(out)[0]
    assert code == 1 and not report["ok"]
    space = report["networks"][0]["space"]
    assert space["size"] == 3 and space["failed"] == [{"depth": 21}]
    assert [d["code"] for d in report["diagnostics"]] == ["E0205"]


# ---- concrete specs ----------------------------------------------------------------------


def test_a_member_is_written_as_a_spec_that_checks_alone(tmp_path):
    family = Family(_write(SPACE, tmp_path))
    member = family.member({"depth": 2, "width": 8, "kinds[0]": "b", "kinds[1]": "a",
                            "mix[1]": 3, "rate": 0.02})
    text = family.concrete_text(member, "a header")
    assert text.startswith("# a header\n")
    path = tmp_path / "member.arch"
    path.write_text(text)
    alone = compile_file(path)
    assert alone.ok and space_of(alone.program.networks["net"]).size == 1  # nothing left
    assert sum(alone.graph.nodes[n]["cost"].params for n in alone.graph) == \
        member.costs["params"]
    assert 'kinds = ("b", "a")' in text and "rate = 0.02" in text


# ---- NAS-Bench-201 -----------------------------------------------------------------------


def test_nas_bench_201_has_15625_cells():
    family = Family(ROOT / "specs" / "nas_bench_201.arch")
    assert family.space.size == 5 ** 6 == 15625
    assert [d.size for d in family.space.dimensions] == [5] * 6


@pytest.mark.parametrize("cell", NB201["published"], ids=lambda c: str(c["index"]))
def test_nas_bench_201_cells_have_the_published_costs(cell):
    family = Family(ROOT / "specs" / "nas_bench_201.arch")
    ops = cell_ops(cell["arch"])
    member = family.member({f"ops[{i}]": op for i, op in enumerate(ops)})
    digits = len(str(cell["params_mb"]).split(".")[1])
    assert round(member.costs["params"] / 1e6, digits) == cell["params_mb"]
    flops = member.costs["macs"] + 10  # the benchmark adds the classifier's bias additions
    assert round(flops / 1e6, len(str(cell["flops_m"]).split(".")[1])) == cell["flops_m"]


@pytest.mark.parametrize("name", sorted(NB201["oracle"]))
def test_nas_bench_201_equals_the_authors_network(name):
    torch = pytest.importorskip("torch")
    from archdsl import lower
    from oracle import fill
    recorded = NB201["oracle"][name]
    graph = compile_file(ROOT / "specs" / "nas_bench_201.arch",
                         settings={"ops": cell_ops(recorded["arch"])}).graph
    module = lower(graph).double().eval()
    layout = [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
              for k, v in module.state_dict().items()]
    assert layout == recorded["layout"]  # the authors' keys, shapes and order
    fill(module, recorded["layout"])
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        logits = module(x)
    expected = torch.tensor(recorded["logits"], dtype=torch.float64)
    assert torch.allclose(logits, expected, rtol=1e-10, atol=1e-12)


# ---- sweep --no-train --------------------------------------------------------------------


def test_sweep_without_training_costs_every_member(capsys, tmp_path):
    path = _write(SPACE.replace(", rate = log_range(1e-3, 1e-1)", ""), tmp_path)
    out = tmp_path / "survey"
    code, text, _ = run(capsys, "sweep", path, "--no-train", "--out", out, "--objective",
                        "params", "--objective", "memory", "--max-params", "1K")
    assert code == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 72
    rejected = [r for r in rows if r["state"] == "rejected"]
    assert rejected and all(int(r["params"]) > 1000 for r in rejected)
    assert all(int(r["params"]) <= 1000 for r in rows if r["state"] == "complete")
    front = [r for r in rows if r["spec"]]
    assert front and "Pareto front (params, memory)" in text
    for row in front:  # every front member is a spec that checks alone, at its costs
        alone = compile_file(row["spec"])
        assert alone.ok
        assert sum(alone.graph.nodes[n]["cost"].params for n in alone.graph) == \
            int(row["params"])
    code, shown, _ = run(capsys, "sweep", "--show", "--out", out)
    assert code == 0 and "72 trials" in shown


def test_sweep_refuses_a_folder_of_other_files(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "sweep", _write(SMALL, tmp_path), "--no-train", "--out",
                       tmp_path)
    assert code == 2 and "notes.txt" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_sweep_usage_errors(capsys, tmp_path):
    spec = _write(SMALL, tmp_path)
    assert run(capsys, "sweep", spec, "--objective", "accuracy")[0] == 2
    assert run(capsys, "sweep", spec, "--no-train", "--objective", "val_acc")[0] == 2
    assert run(capsys, "sweep", spec, "--max-macs", "lots")[0] == 2
    assert run(capsys, "sweep", spec, "--plot", "../elsewhere.png")[0] == 2
    assert run(capsys, "sweep", spec, "--heartbeat", "0")[0] == 2
    code, _, err = run(capsys, "sweep", _write(SMALL.replace("choice(4, 8)", "4"), tmp_path),
                       "--no-train", "--out", tmp_path / "o")
    assert code == 2 and "no search space" in err


# ---- sweep with training -----------------------------------------------------------------

TRAIN = ("--data", "shapes:120", "--epochs", "1", "--batch-size", "40", "--device", "cpu",
         "--quiet")


def test_a_sweep_trains_each_member_and_resumes_with_nothing_lost(capsys, tmp_path):
    pytest.importorskip("optuna")
    spec, out = _write(SMALL, tmp_path), tmp_path / "sweep"
    code, text, _ = run(capsys, "sweep", spec, "--set", "depth=1,2", "--out", out,
                        "--objective", "val_acc", "--objective", "macs", *TRAIN)
    assert code == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sorted((r["width"], r["depth"]) for r in rows) == [
        ("4", "1"), ("4", "2"), ("8", "1"), ("8", "2")]
    assert all(r["state"] == "complete" and 0 <= float(r["val_acc"]) <= 1 for r in rows)
    for row in rows:  # the spec each trial trained, and its run folder
        assert compile_file(row["spec"]).ok
        assert (Path(row["spec"]).with_suffix("") / "model.pt").is_file()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the same command again: the grid is done, so nothing is run twice
    code, _, _ = run(capsys, "sweep", spec, "--set", "depth=1,2", "--out", out,
                     "--objective", "val_acc", "--objective", "macs", *TRAIN)
    assert code == 0 and len(list(csv.DictReader((out / "trials.csv").open()))) == 4


def test_workers_on_one_machine_run_each_member_once(tmp_path):
    pytest.importorskip("optuna")
    spec, out = _write(SMALL.replace("choice(4, 8)", "choice(4, 6, 8, 10)"), tmp_path), \
        tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "archdsl", "sweep", str(spec), "--workers",
                           "2", "--set", "depth=1,2", "--pruner", "none", "--out", str(out),
                           *TRAIN], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [r for r in csv.DictReader((out / "trials.csv").open()) if r["state"] == "complete"]
    assert sorted((int(r["width"]), int(r["depth"])) for r in rows) == sorted(
        (w, d) for w in (4, 6, 8, 10) for d in (1, 2))


def test_limits_reject_members_before_training(capsys, tmp_path):
    pytest.importorskip("optuna")
    spec, out = _write(SMALL, tmp_path), tmp_path / "sweep"
    code, _, _ = run(capsys, "sweep", spec, "--out", out, "--max-params", "200", *TRAIN)
    assert code == 0
    rows = {r["width"]: r for r in csv.DictReader((out / "trials.csv").open())}
    assert rows["8"]["state"] == "rejected" and "--max-params" in rows["8"]["note"]
    assert not (out / "trials" / f"{int(rows['8']['trial']):04d}").exists()
    assert rows["4"]["state"] == "complete"


def test_latency_is_measured_without_training(capsys, tmp_path):
    pytest.importorskip("optuna")
    spec, out = _write(SMALL, tmp_path), tmp_path / "sweep"
    code, _, _ = run(capsys, "sweep", spec, "--out", out, "--objective", "latency",
                     "--objective", "params", "--device", "cpu", "--quiet")
    assert code == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2 and all(float(r["latency"]) > 0 for r in rows)
    assert not any((out / "trials" / f"{int(r['trial']):04d}").exists() for r in rows)


def _sqlite_states(path: Path) -> list[str]:
    try:
        with sqlite3.connect(path, timeout=30) as db:
            return [row[0] for row in db.execute("select state from trials order by number")]
    except sqlite3.Error:
        return []


def test_a_killed_workers_trial_is_retried_and_the_study_completes(tmp_path):
    pytest.importorskip("optuna")
    spec, out = _write(SMALL.replace("choice(4, 8)", "choice(4, 8, 12)"), tmp_path), \
        tmp_path / "sweep"
    base = [sys.executable, "-m", "archdsl", "sweep", str(spec), "--out", str(out),
            "--heartbeat", "1", "--pruner", "none", "--device", "cpu", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slow = ["--data", "shapes:2000", "--epochs", "3", "--batch-size", "20"]
    worker = subprocess.Popen(base + slow, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while "RUNNING" not in _sqlite_states(out / "study.db") and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)  # mid-trial, no chance to say so
    worker.wait()
    assert _sqlite_states(out / "study.db").count("RUNNING") == 1
    quick = ["--data", "shapes:120", "--epochs", "1", "--batch-size", "40"]
    again = subprocess.run(base + quick, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    states = _sqlite_states(out / "study.db")
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 3
    rows = [r for r in csv.DictReader((out / "trials.csv").open()) if r["state"] == "complete"]
    assert sorted(r["width"] for r in rows) == ["12", "4", "8"]  # each member once


# ---- a shared PostgreSQL study -----------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture
def postgres():
    pytest.importorskip("psycopg")
    pytest.importorskip("optuna")
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl)")
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(
                ["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root with no `postgres` user to start the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    import tempfile
    home = Path(tempfile.mkdtemp(prefix="archdsl-pg-"))  # outside pytest's 0700 folders,
    os.chmod(home, 0o777)  # so that the server's user can reach it
    data = home / "db"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(data / "log"), "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(postgres, tmp_path):
    spec = _write(SMALL.replace("choice(4, 8)", "choice(4, 6, 8, 10)"), tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "archdsl", "sweep", str(spec), "--storage", postgres,
               "--study", "shared", "--set", "depth=1,2", "--pruner", "none", *TRAIN]
    workers = [subprocess.Popen([*command, "--out", str(tmp_path / f"worker{i}")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    results = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), results
    import optuna
    study = optuna.load_study(study_name="shared", storage=postgres)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    members = sorted((t.params["width"], t.params["depth"]) for t in done)
    assert members == sorted((w, d) for w in (4, 6, 8, 10) for d in (1, 2))  # each once
    ran = [{r["trial"] for r in csv.DictReader((tmp_path / f"worker{i}" / "trials.csv")
                                                .open())} for i in range(2)]
    assert ran[0] == ran[1] and len(ran[0]) >= 8  # both see the whole study (and any
    # duplicate: two workers drawing one member at once, the later one failed at once)
    specs = {t.user_attrs["spec"] for t in done}
    assert any("worker0" in s for s in specs) and any("worker1" in s for s in specs)


def _write(text: str, folder: Path | None = None) -> Path:
    import tempfile
    folder = Path(folder or tempfile.mkdtemp())
    path = folder / f"space{abs(hash(text)) % 10 ** 8}.arch"
    path.write_text(text)
    return path
