"""The command line as a user runs it: exit codes, compiler-style messages, no tracebacks."""

from __future__ import annotations

import json

from conftest import article, run_cli

MECH = "status: established"


def test_build_prints_summary_and_exits_zero(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)})
    result = run_cli(root, "build")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Built ") and " pages in " in result.stdout


def test_check_reports_path_line_col_and_hint_without_traceback(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "Intro.\n\nSee [[alpah]].",
                                                            extra=MECH)})
    result = run_cli(root, "check")
    assert result.returncode == 1
    assert "content/mechanism/alpha.md:10:5: error: link target 'alpah' does not exist" \
        in result.stderr
    assert "  hint: did you mean 'alpha'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "site").exists()


def test_check_json_lists_diagnostics(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "See [[zzz]].",
                                                            extra=MECH)})
    result = run_cli(root, "check", "--format", "json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["errors"] == 1
    errors = [d for d in payload["diagnostics"] if d["severity"] == "error"]
    assert errors[0]["path"] == "content/mechanism/alpha.md"
    assert (errors[0]["line"], errors[0]["col"]) == (8, 5)
    assert errors[0]["hint"]


def test_config_error_exits_two(make_site) -> None:
    root = make_site({"config.yaml": "title: x\nsectons: []\n"})
    result = run_cli(root, "build")
    assert result.returncode == 2
    assert "config.yaml:2:1: error: unknown key 'sectons' in config.yaml" in result.stderr
    assert "hint: did you mean 'sections'?" in result.stderr


def test_output_dot_and_content_are_refused_and_nothing_deleted(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)})
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for target in (".", "content"):
        result = run_cli(root, "build", "--output", target)
        assert result.returncode == 2, target
        assert "refusing to use --output" in result.stderr
        assert "nothing was deleted" in result.stderr
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_new_scaffolds_valid_article_and_refuses_overwrite(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "[[sigma-receptors]]",
                                                            extra=MECH)})
    result = run_cli(root, "new", "mechanism", "Sigma receptors")
    assert result.returncode == 0, result.stderr
    created = root / "content/mechanism/sigma-receptors.md"
    text = created.read_text()
    assert 'title: "Sigma receptors"' in text and "status: \"established\"" in text
    assert run_cli(root, "check", "--drafts").returncode == 0
    again = run_cli(root, "new", "mechanism", "Sigma receptors")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert created.read_text() == text


def test_help_shows_examples() -> None:
    from conftest import REPO

    for command in ("build", "check", "new", "serve"):
        result = run_cli(REPO, command, "--help")
        assert result.returncode == 0
        assert "examples:" in result.stdout


def test_an_interpreter_without_kbgens_packages_gets_the_setup_command(make_site) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from conftest import REPO

    root = make_site({"content/mechanism/a.md": article("A", "Body.", extra="status: established")})
    # -S: no site-packages, as with a python3 the project was never installed into
    done = subprocess.run([sys.executable, "-S", str(REPO / "build.py"), "check"], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        "error: kbgen needs the Python packages markdown, jinja2, pyyaml, pygments, watchdog "
        "and nh3, not installed for ")
    assert "python3 -m venv .venv && .venv/bin/pip install -e ." in done.stderr


def test_the_dependency_check_names_exactly_what_is_missing() -> None:
    from kbgen.environment import missing_distributions, missing_message

    assert missing_distributions() == []  # this test environment has everything
    assert missing_message() is None
    message = missing_message({"markdown": "markdown", "kbgen_no_such_module": "no-such-dist"})
    assert message is not None
    assert message.startswith("error: kbgen needs the Python package no-such-dist, not installed")


def test_serve_port_out_of_range_is_a_usage_error(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)})
    for port in ("70000", "-1"):
        result = run_cli(root, "serve", "--port", port)
        assert result.returncode == 2, result.stderr
        assert "argument --port: " in result.stderr and "0-65535" in result.stderr
        assert "Traceback" not in result.stderr


def test_new_with_a_very_long_title_makes_a_short_file_name(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)})
    title = "Ketamine and the long title " * 15  # 420 characters
    result = run_cli(root, "new", "mechanism", title)
    assert result.returncode == 0, result.stderr
    (created,) = (root / "content/mechanism").glob("ketamine-*.md")
    assert len(created.stem) <= 80 and not created.stem.endswith("-")
    assert created.stem.startswith("ketamine-and-the-long-title-ketamine")
    assert f'title: "{" ".join(title.split())}"' in created.read_text()


def _tree_state(root) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*") if "site" not in p.relative_to(root).parts}


def test_check_writes_nothing_into_the_project(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "See [[beta]].", extra=MECH),
                      "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=MECH)})
    before = _tree_state(root)
    assert run_cli(root, "check").returncode == 0
    assert _tree_state(root) == before  # no .kbgen-cache either
    assert run_cli(root, "build").returncode == 0
    page = root / "content/mechanism/alpha.md"
    page.write_text(page.read_text() + "\nA new paragraph to convert.\n")
    before = _tree_state(root)
    assert run_cli(root, "check").returncode == 0
    assert _tree_state(root) == before  # the cache is read, never written


def test_ctrl_c_after_the_swap_says_the_new_site_is_in_place(
    make_site, monkeypatch, capsys
) -> None:
    from kbgen import cli, write

    root = make_site({"content/mechanism/alpha.md": article("Alpha", "Old words.", extra=MECH)})
    config = str(root / "config.yaml")
    assert cli.main(["build", "-q", "--config", config]) == 0
    (root / "content/mechanism/alpha.md").write_text(article("Alpha", "New words.", extra=MECH))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the warnings print, after the swap

    monkeypatch.setattr(cli, "print_diagnostics", interrupted)
    capsys.readouterr()
    assert cli.main(["build", "-q", "--config", config]) == 130
    err = capsys.readouterr().err
    assert f"interrupted; the new site was already in place in {root / 'site'}" in err
    assert "left unchanged" not in err
    assert "New words." in (root / "site/mechanism/alpha/index.html").read_text()

    # Before the swap, the old message stays true.
    (root / "content/mechanism/alpha.md").write_text(article("Alpha", "Newer.", extra=MECH))
    monkeypatch.setattr(write, "swap_in", interrupted)
    assert cli.main(["build", "-q", "--config", config]) == 130
    assert "the previous site was left unchanged" in capsys.readouterr().err
    assert "New words." in (root / "site/mechanism/alpha/index.html").read_text()
