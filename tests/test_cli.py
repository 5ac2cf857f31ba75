"""The command line: output, exit codes, JSON, and that the front end never imports torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from archdsl.cli import main

from conftest import ROOT

BROKEN = "tests/invalid/residual_missing_projection.arch"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_prints_one_line_per_network(capsys, in_root):
    code, out, _ = run(capsys, "check", "specs/resnet50.arch", "specs/googlenet.arch")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("specs/resnet50.arch: resnet50: 175 layers, 25,557,032 parameters, "
                        "outputs out 1000")
    assert "aux1 1000 (train)" in lines[1]


def test_check_reports_errors_with_exit_1(capsys, in_root):
    code, _, err = run(capsys, "check", BROKEN)
    assert code == 1
    assert "error[E0301]" in err and f"--> {BROKEN}:3:5" in err


def test_usage_errors_exit_2(capsys, in_root):
    assert run(capsys, "check", "no/such.arch")[0] == 2
    assert run(capsys, "check", "specs/resnet50.arch", "--set", "nope=1")[0] == 2
    assert run(capsys, "check", "specs/resnet50.arch", "--input", "3x0x7")[0] == 2
    assert run(capsys, "check", "specs/resnet50.arch", "--network", "other")[0] == 2
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--bogus"])
    assert exit_.value.code == 2


def test_set_and_input_change_the_result(capsys, in_root):
    code, out, _ = run(capsys, "check", "specs/resnet18.arch", "--set", "classes=10",
                       "--input", "3x64x64")
    assert code == 0 and "outputs out 10" in out and "5,130 parameters" not in out


def test_json_diagnostics_for_editors(capsys, in_root):
    code, out, _ = run(capsys, "check", "--format", "json", BROKEN, "specs/resnet18.arch")
    report = json.loads(out)
    assert code == 1
    broken, fine = report
    assert not broken["ok"] and broken["diagnostics"][0]["code"] == "E0301"
    primary = broken["diagnostics"][0]["primary"]
    assert (primary["file"], primary["line"], primary["column"]) == (BROKEN, 3, 5)
    assert primary["label"] == "body and skip are added here"
    assert fine["ok"] and fine["networks"][0]["parameters"] == 11_689_512


@pytest.mark.parametrize("command", [["ir", "specs/googlenet.arch"],
                                     ["render", "specs/googlenet.arch", "-o", "-", "--format", "dot"],
                                     ["stats", "specs/googlenet.arch", "--format", "json"]])
def test_text_outputs_do_not_depend_on_the_process(command, capsys, in_root):
    """Another process with another hash seed (set and dict order of strings) writes the
    same bytes as this one."""
    here = run(capsys, *command)[1]
    other = subprocess.run([sys.executable, "-m", "archdsl", *command], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert other.returncode == 0 and other.stdout == here and here


def test_python_m_archdsl_and_help():
    out = subprocess.run([sys.executable, "-m", "archdsl", "check", "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--set NAME=VALUE" in out.stdout


def test_front_end_does_not_import_torch():
    code = ("import sys, archdsl.cli\n"
            "rc = archdsl.cli.main(['check', 'specs/resnet152.arch', 'specs/googlenet.arch'])\n"
            "assert rc == 0, rc\n"
            "rc = archdsl.cli.main(['stats', 'specs/resnet152.arch', '--depth', '1'])\n"
            "assert rc == 0, rc\n"
            "import tempfile, os\n"
            "out = os.path.join(tempfile.mkdtemp(), 'r.dot')\n"
            "rc = archdsl.cli.main(['render', 'specs/resnet152.arch', '-o', out])\n"
            "assert rc == 0, rc\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_commands_that_need_torch_say_so_where_it_is_missing(tmp_path):
    """A machine with the front end only: the torch commands are usage errors with the fix."""
    commands = {"`archdsl build`": ["build", "specs/resnet18.arch", "-o", str(tmp_path / "b")],
                "training": ["train", "specs/resnet18.arch", "--out", str(tmp_path / "t")],
                "`archdsl export`": ["export", "specs/resnet18.arch", "-o", str(tmp_path / "e")],
                "`archdsl import`": ["import", "torchvision.models:resnet50"]}
    code = ("import sys, json\n"
            "sys.modules['torch'] = None  # as if torch were not installed\n"
            "import archdsl.cli\n"
            f"print(json.dumps([archdsl.cli.main(argv) for argv in {list(commands.values())!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [2] * len(commands), out.stderr
    assert "Traceback" not in out.stderr
    for what in commands:
        assert f"{what} needs PyTorch: pip install torch" in out.stderr


def test_unwritable_outputs_are_usage_errors(tmp_path, capsys, in_root):
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["build", "specs/resnet18.arch", "-o", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_check_goes_on_after_a_missing_file(capsys, in_root):
    assert main(["check", "no/such.arch", "specs/resnet18.arch"]) == 2
    out, err = capsys.readouterr()
    assert "no such file: no/such.arch" in err and "resnet18: 69 layers" in out


def test_flags_that_name_nothing_are_refused(capsys, in_root):
    assert main(["check", "specs/resnet18.arch", "--input", "foo=3x8x8"]) == 2
    assert "no input is called `foo`" in capsys.readouterr().err
    assert main(["render", "specs/resnet18.arch", "--expand", "layer9", "--format", "dot"]) == 2
    assert main(["render", "specs/resnet18.arch", "-o", "x.png", "--format", "svg"]) == 2
    assert main(["stats", "specs/resnet18.arch", "specs/alexnet.arch", "--depth", "1"]) == 2


def test_not_a_number_is_out_of_range(capsys, in_root):
    assert main(["check", "specs/alexnet.arch", "--set", "dropout=nan"]) == 1
    assert "must be a finite number" in capsys.readouterr().err


def test_files_without_networks(tmp_path, capsys):
    blocks = tmp_path / "blocks.arch"
    blocks.write_text("block b() { relu }\n")
    assert main(["check", str(blocks)]) == 0
    assert "ok, no networks (1 block)" in capsys.readouterr().out
    assert main(["stats", str(blocks)]) == 2
    assert "nothing to do" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["googlenet", "preact_resnet18"])
def test_golden_ir_dump(spec, capsys, in_root):
    from conftest import check_golden
    assert main(["ir", f"specs/{spec}.arch"]) == 0
    check_golden(ROOT / "tests" / "golden" / f"ir_{spec}.txt", capsys.readouterr().out)


def test_golden_ast_dump(capsys, in_root):
    from conftest import check_golden
    assert main(["ast", "archdsl/stdlib/resnet.arch"]) == 0
    check_golden(ROOT / "tests" / "golden" / "ast_std_resnet.txt", capsys.readouterr().out)
    assert main(["ast", "tests/invalid/missing_comma_in_args.arch"]) == 1
    assert "error[E0100]" in capsys.readouterr().err


def test_input_takes_any_rank_the_network_input_has(capsys, in_root):
    code, out, err = run(capsys, "check", "specs/m5.arch", "--input", "1x8000")
    assert code == 0 and "outputs out 10" in out
    code, out, err = run(capsys, "check", "specs/m5.arch", "--input", "1x8000x1")
    assert code == 2 and "3 sizes, but input `waveform`" in err and "has 2 axes, C x L" in err
    assert "specs/m5.arch:" in err and "Traceback" not in err
    code, out, err = run(capsys, "check", "specs/resnet18.arch", "--input", "3x64")
    assert code == 2 and "give 3 sizes" in err
