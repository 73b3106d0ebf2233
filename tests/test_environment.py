"""What a reviewer's machine relies on without running it: the lock file, the set-up script, the Dockerfile."""

import re

from conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
README = (REPO / "README.md").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _all(name: str) -> list[str]:
    return [args for instruction, args in _instructions(DOCKERFILE) if instruction == name]


def test_dockerfile_base_image_is_an_exact_official_python_3_11():
    (base,) = _all("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base


def test_dockerfile_runs_as_a_non_root_user():
    users = _all("USER")
    assert users and users[-1] not in ("root", "0")
    assert _instructions(DOCKERFILE).index(("USER", users[0])) < _instructions(DOCKERFILE).index(("RUN", "./setup.sh"))


def test_dockerfile_installs_from_the_lock_file_through_the_set_up_script():
    assert "./setup.sh" in _all("RUN")
    copied = " ".join(_all("COPY"))
    assert "requirements.lock" in copied and "setup.sh" in copied
    setup = (REPO / "setup.sh").read_text()
    assert "--require-hashes -r requirements.lock" in setup and "--no-deps" in setup
    assert "./setup.sh" in (REPO / ".ci/run").read_text()


def test_dockerfile_runs_the_pipeline_without_git_into_the_mounted_folder():
    assert any("core.no_scm true" in run for run in _all("RUN"))
    assert ".git" in (REPO / ".dockerignore").read_text().split()
    (volume,) = _all("VOLUME")
    (command,) = _all("CMD")
    assert "dvc repro" in command and "$RESULTS" in command
    assert any(f"RESULTS={volume}" in env for env in _all("ENV"))


def test_readme_docker_lines_match_the_dockerfile():
    commands = ("docker ", "mkdir -p results && docker ")
    readme_lines = {line.strip() for line in README.splitlines() if line.strip().startswith(commands)}
    dockerfile_lines = {line.lstrip("# ").strip() for line in DOCKERFILE.splitlines()
                        if line.lstrip("# ").startswith(commands)}
    assert len(dockerfile_lines) == 2 and dockerfile_lines <= readme_lines
    volume = _all("VOLUME")[0]
    run = next(line for line in readme_lines if "docker run" in line)
    assert f":{volume}" in run


def test_docker_results_belong_to_and_are_readable_by_the_host_user():
    """The documented run passes the host's uid and gid; any uid can write the work dir and HOME."""
    run = next(line for line in README.splitlines() if "docker run" in line and "/results" in line)
    assert '--user "$(id -u):$(id -g)"' in run and run.startswith("mkdir -p results &&")
    assert any("chmod a+rwX" in args and "-path ./.venv -prune" in args and "/home/repro" in args
               for args in _all("RUN"))
    assert any("HOME=" in env for env in _all("ENV"))
    (command,) = _all("CMD")
    for folder in ("figures", "metrics", "records", "histories", "reports", "runs"):
        assert f" {folder}" in command


def test_lock_file_pins_every_package_with_hashes():
    lock = (REPO / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\]+)", lock, flags=re.MULTILINE)
    names = {name.lower().replace("_", "-") for name, _ in pins}
    assert {"tensorflow-cpu", "keras", "dvc", "click", "pandas", "matplotlib", "pytest"} <= names
    assert lock.count("--hash=sha256:") >= len(pins)
    for line in lock.splitlines():  # nothing unpinned slips in
        if line and not line.startswith((" ", "#")):
            assert "==" in line, line


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", README, flags=re.DOTALL).group(1)
    setup_and_run, setup_and_test = first_block.strip().splitlines()
    assert setup_and_run.startswith("./setup.sh") and setup_and_run.endswith("dvc repro")
    assert setup_and_test.startswith("./setup.sh")
    test_command = setup_and_test.split("&&")[-1].strip()
    assert "pytest" in test_command and test_command in (REPO / ".ci/run").read_text()


def test_the_installed_packages_are_exactly_the_locked_ones():
    """setup.sh installed the lock file: every locked package at its locked version."""
    from importlib import metadata

    lock = (REPO / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", lock, flags=re.MULTILINE))
    installed = {d.metadata["Name"].lower().replace("_", "-").replace(".", "-"): d.version
                 for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name.lower().replace(".", "-")))
             for name, version in pins.items() if installed.get(name.lower().replace(".", "-")) != version}
    assert not wrong, f"installed versions differ from requirements.lock (run ./setup.sh): {wrong}"


def test_provenance_names_the_commit_in_a_git_checkout_or_as_given_without_one(tmp_path, monkeypatch):
    """A copy without .git (a lent GPU machine, a container) records REPRO_GIT_COMMIT, or says it has no commit."""
    from repro import provenance

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("REPRO_GIT_COMMIT", "abc123")
    assert len(provenance.git()["commit"]) == 40  # git's own answer wins where there is a repository
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git()["commit"] == "abc123 (given by REPRO_GIT_COMMIT: no git repository here)"
    monkeypatch.delenv("REPRO_GIT_COMMIT")
    assert provenance.git()["commit"] == "unknown (no git repository)"


def test_what_the_dockerfile_copies_before_set_up_is_enough_to_install_the_package(tmp_path):
    """The image installs from a layer holding only the files copied before `RUN ./setup.sh`; pip's editable
    install must succeed from those alone (a package in pyproject.toml whose folder is not copied fails it)."""
    import shutil
    import subprocess
    import sys

    instructions = _instructions(DOCKERFILE)
    before_setup = instructions[:instructions.index(("RUN", "./setup.sh"))]
    workdir = next(args for instruction, args in reversed(before_setup) if instruction == "WORKDIR")
    for instruction, args in before_setup:
        if instruction != "COPY":
            continue
        *sources, destination = [word for word in args.split() if not word.startswith("--")]
        target = tmp_path / destination.removeprefix(workdir).lstrip("./")
        for source in sources:
            copied = target / (REPO / source).name if destination.endswith("/") else target
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, copied)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                             "--no-build-isolation", "--no-index", "-e", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
