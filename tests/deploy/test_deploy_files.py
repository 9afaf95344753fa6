"""deploy/compose.yaml against the Compose specification's JSON schema (check-jsonschema's copy), deploy/kubernetes/
against the Kubernetes API schemas (kubernetes-validate, offline, strict), each failing on a broken copy; what each
must hold for the bot to run; .env.example against the settings; the lock files against pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from bot.settings import EXAMPLE_POLICY, Settings, package_version
from workflows.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
KUBERNETES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
OLDEST_KUBERNETES = "1.30.0"  # the oldest still supported by the big clouds; the Deployment's preStop sleep needs it


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return _run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))


def _kubernetes_check(*paths: Path, version: str | None = None) -> subprocess.CompletedProcess[str]:
    versions = ("--kubernetes-version", version) if version else ()
    return _run(str(BIN / "kubernetes-validate"), "--strict", *versions, *map(str, paths))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_compose_file_fits_the_compose_specification() -> None:
    result = _compose_check(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def _misspell(mapping: dict[str, Any], key: str, wrong: str) -> None:
    mapping[wrong] = mapping.pop(key)


@pytest.mark.parametrize(
    ("breaking", "said"),
    [
        (
            lambda c: c["services"]["serve"]["depends_on"]["migrate"].update(condition="service_done"),
            "'service_done' is not one of",
        ),
        (lambda c: _misspell(c["services"]["worker"], "healthcheck", "helthcheck"), "'helthcheck' was unexpected"),
    ],
    ids=["no-such-condition", "misspelt"],
)
def test_a_broken_compose_file_is_refused(tmp_path: Path, breaking: Any, said: str) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    breaking(compose)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(compose))
    result = _compose_check(broken)
    assert result.returncode == 1 and said in result.stdout, result.stdout


def test_the_compose_file_runs_the_bot_as_described() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "serve", "worker", "proxy"}
    assert services["migrate"]["command"] == ["db", "upgrade"] and services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("serve", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["env_file"] == [{"path": "../.env", "required": True}]
        assert services[name]["user"] == "10001:10001"
    assert services["serve"]["deploy"]["replicas"] == 2 and services["serve"]["environment"]["TRIAGE_WORKERS"] == "0"
    assert services["worker"]["command"][0] == "worker" and "deploy" not in services["worker"]
    assert "/readyz" in " ".join(services["serve"]["healthcheck"]["test"])
    assert all("healthcheck" in services[name] for name in ("postgres", "serve", "worker", "proxy"))
    assert services["proxy"]["depends_on"]["serve"]["condition"] == "service_healthy"
    assert "server serve:8080 resolve;" in (DEPLOY / "nginx.conf").read_text()
    # No secret is written in the file: they come from .env.
    assert not re.search(r"(?i)(password|token|secret):\s+[^${\s]", (DEPLOY / "compose.yaml").read_text())


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, None], ids=["oldest", "newest"])
def test_the_kubernetes_manifests_fit_the_kubernetes_schemas(version: str | None) -> None:
    result = _kubernetes_check(*KUBERNETES, version=version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == 6, result.stdout


@pytest.mark.parametrize(
    ("breaking", "said"),
    [
        (lambda c: _misspell(c["readinessProbe"]["httpGet"], "path", "paht"), "'paht' was unexpected"),
        (lambda c: c["resources"]["requests"].update(cpu=["250m"]), "['250m']"),
    ],
    ids=["misspelt", "wrong-type"],
)
def test_a_broken_kubernetes_manifest_is_refused(tmp_path: Path, breaking: Any, said: str) -> None:
    [deployment] = _documents(DEPLOY / "kubernetes" / "deployment.yaml")
    breaking(deployment["spec"]["template"]["spec"]["containers"][0])
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = _kubernetes_check(broken)
    assert result.returncode != 0 and said in result.stdout, result.stdout


def _kubernetes() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for path in KUBERNETES for d in _documents(path)}


def test_the_kubernetes_manifests_run_the_bot_as_described() -> None:
    objects = _kubernetes()
    deployment = objects[("Deployment", "triage-bot")]
    pod = deployment["spec"]["template"]["spec"]
    [serve] = pod["containers"]
    assert serve["args"] == ["serve"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serve["resources"]["requests"]["cpu"] and serve["resources"]["requests"]["memory"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The migration first: the Job runs `db upgrade`, and the new pods wait for the schema it makes.
    [waiting] = pod["initContainers"]
    assert waiting["args"][:2] == ["db", "current"] and "--wait" in waiting["args"]
    job = objects[("Job", "triage-bot-migrate")]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    for spec, container in ((pod, serve), (pod, waiting), (job["spec"]["template"]["spec"], migrate)):
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"configMapRef": {"name": "triage-bot"}} in container["envFrom"]
        assert {"secretRef": {"name": "triage-bot"}} in container["envFrom"]
        assert container["resources"]["requests"]
        # Released together: the image is this version's.
        assert container["image"].endswith(f":{package_version()}"), container["image"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        objects[("Service", "triage-bot")]["spec"]["selector"],
        objects[("PodDisruptionBudget", "triage-bot")]["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items(), selector
    assert objects[("PodDisruptionBudget", "triage-bot")]["spec"]["minAvailable"] == 1
    settings = objects[("ConfigMap", "triage-bot")]["data"]
    assert set(settings) <= {f"TRIAGE_{name.upper()}" for name in Settings.model_fields}
    assert settings["TRIAGE_POLICY"] == "/etc/triage-bot/policy.yaml"
    mount = next(m for m in serve["volumeMounts"] if m["mountPath"] == "/etc/triage-bot")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "triage-bot-policy"


def test_the_kubernetes_policy_is_the_shipped_example(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_kubernetes()[("ConfigMap", "triage-bot-policy")]["data"]["policy.yaml"])
    assert load_policy(policy) == load_policy(EXAMPLE_POLICY)


def test_env_example_lists_every_setting() -> None:
    text = (REPO / ".env.example").read_text()
    listed = re.findall(r"^#? ?(TRIAGE_[A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == {f"TRIAGE_{name.upper()}" for name in Settings.model_fields}
    # What Compose interpolates is there too.
    assert re.search(r"^POSTGRES_PASSWORD=", text, flags=re.MULTILINE)


def test_the_lock_files_hold_what_pyproject_asks_for() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def pinned(name: str) -> dict[str, str]:
        text = (REPO / "requirements" / name).read_text()
        return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.MULTILINE)}

    run, dev = pinned("run.txt"), pinned("dev.txt")
    for lock, wanted in (
        (run, project["dependencies"]),
        (dev, project["dependencies"] + project["optional-dependencies"]["dev"]),
    ):
        for line in wanted:
            requirement = Requirement(line)
            name = requirement.name.lower().replace("_", "-")
            assert name in lock, f"{name} is not in the lock: run `make lock`"
            assert requirement.specifier.contains(lock[name], prereleases=True), (
                f"{name} {lock[name]} in the lock does not satisfy {requirement.specifier}: run `make lock`"
            )
    # The dev tools' lock installs the very versions the image and `make run` install.
    assert {name: dev[name] for name in run} == run


def test_the_licence_is_the_one_pyproject_names() -> None:
    licence = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert licence == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
