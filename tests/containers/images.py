"""Images for the container tests, built locally (no registry is reachable): a debootstrap base and its children.

The base is Debian bookworm minbase with python3, venv and the machine's CA bundle plus a pip.conf naming it, so
pip inside a build reaches the same index the host does. Its rootfs tarball is cached under ~/.cache/bagboard keyed
by everything that produced it, and the imported image is tagged with the same key, so a warm machine builds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "dockerfiles"
CACHE = Path(os.environ.get("BAGBOARD_CACHE_DIR", Path.home() / ".cache" / "bagboard"))
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# Inside the image the bundle gets a name of its own: a later update-ca-certificates run (any apt install that
# pulls ca-certificates' trigger) rewrites ca-certificates.crt without the machine's extra authorities.
IMAGE_CA = "/etc/ssl/certs/bagboard-host-ca.crt"
# Tags the compose file names: the tests build these locally so the compose file itself is what runs.
APP_IMAGE = "bagboard:latest"
COMPOSE_IMAGES = {
    "redis": "redis:7-alpine",
    "nginx": "nginx:1.27-alpine",
    "fake-gcs": "fsouza/fake-gcs-server:1.54.0",
}


def docker(*args: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI and return the finished process (stdout and stderr as text)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def debian_mirror() -> str:
    """Return the Debian mirror of the machine's apt sources (deb822 or one-line format)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:URIs:|^deb)\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s", text, re.MULTILINE):
            return match.group(1)
    return FALLBACK_MIRROR


def pip_conf() -> str:
    """Return the pip.conf of the base image: the CA bundle, and the host's index when it is a network one."""
    lines = ["[global]", f"cert = {IMAGE_CA}", "disable-pip-version-check = true"]
    for key in ("index-url", "extra-index-url"):
        value = _pip_config(key)
        urls = [url for url in value.split() if url.startswith(("http://", "https://"))]
        if urls:
            lines.append(f"{key} = {' '.join(urls)}")
    return "\n".join(lines) + "\n"


def _pip_config(key: str) -> str:
    env = os.environ.get(f"PIP_{key.upper().replace('-', '_')}")
    if env:
        return env
    try:
        out = subprocess.run(
            ["pip", "config", "get", f"global.{key}"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().strip("'\"") if out.returncode == 0 else ""


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that decides the base's content; its hash names the cache entry and the image tag."""

    mirror: str
    pip_conf: str
    ca_digest: str

    @classmethod
    def current(cls) -> BaseRecipe:
        """Return the recipe of this machine."""
        return cls(debian_mirror(), pip_conf(), hashlib.sha256(CA_BUNDLE.read_bytes()).hexdigest())

    @property
    def key(self) -> str:
        """Return a short hash of the recipe."""
        text = "\n".join([SUITE, "minbase", *PACKAGES, self.mirror, self.pip_conf, self.ca_digest, "v1"])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def tag(self) -> str:
        """Return the base image's tag."""
        return f"bagboard-test-base:{self.key}"


def image_exists(tag: str) -> bool:
    """Tell whether the engine has an image of that tag."""
    return docker("image", "inspect", tag, check=False).returncode == 0


def forget_base() -> None:
    """Remove the cached rootfs and the base image, so the next ensure_base starts from debootstrap."""
    recipe = BaseRecipe.current()
    (CACHE / f"base-{recipe.key}.tar").unlink(missing_ok=True)
    docker("image", "rm", "-f", recipe.tag, check=False)


def ensure_base(log=print) -> str:
    """Return the base image's tag, importing the cached rootfs or running debootstrap first if needed."""
    recipe = BaseRecipe.current()
    if image_exists(recipe.tag):
        return recipe.tag
    tarball = CACHE / f"base-{recipe.key}.tar"
    if not tarball.exists():
        started = time.monotonic()
        log(f"debootstrap {SUITE} from {recipe.mirror} (cached as {tarball})")
        build_rootfs_tarball(recipe, tarball)
        log(f"base rootfs built in {time.monotonic() - started:.0f} s")
    docker("import", str(tarball), recipe.tag)
    return recipe.tag


def build_rootfs_tarball(recipe: BaseRecipe, tarball: Path, rootfs: Path | None = None) -> None:
    """Debootstrap (unless rootfs is given), add the CA bundle and pip.conf, and tar it atomically to tarball."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bagboard-rootfs-", dir=tarball.parent) as tmp:
        if rootfs is None:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(rootfs),
                    recipe.mirror,
                ],
                check=True,
                capture_output=True,
                timeout=1800,
            )
        shutil.copyfile(CA_BUNDLE, rootfs / IMAGE_CA.lstrip("/"))
        shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text(recipe.pip_conf)
        # No apt lists or caches in the base: children run apt-get update themselves.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = Path(tmp) / "base.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=1800)
        partial.rename(tarball)


def build(
    tag: str, context: Path, dockerfile: Path | None = None, base: str | None = None, *, no_cache: bool = False
) -> float:
    """Build an image with the legacy builder (BuildKit would pull its frontend); return the seconds it took."""
    argv = ["build", "-t", tag, *(["--no-cache"] if no_cache else [])]
    if dockerfile is not None:
        argv += ["-f", str(dockerfile)]
    if base is not None:
        argv += ["--build-arg", f"BASE_IMAGE={base}"]
    started = time.monotonic()
    proc = subprocess.run(
        ["docker", *argv, str(context)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker build {tag} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def build_app(base: str, tag: str = APP_IMAGE, *, no_cache: bool = False) -> float:
    """Build the project's Dockerfile on the base; return the seconds it took."""
    return build(tag, REPO, base=base, no_cache=no_cache)


@contextmanager
def build_lock() -> Iterator[None]:
    """Hold the machine-wide build lock: a prebuild (python -m tests.containers.images) and the tests share it."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_all() -> tuple[str, float]:
    """Build the base (cached), the app image and the compose stand-ins; return the base tag and the app's build s.

    The stand-ins build while the app's pip install runs: both mostly wait on the network.
    """
    with build_lock():
        base = ensure_base()
        with ThreadPoolExecutor(max_workers=2) as pool:
            stand_ins = pool.submit(build_compose_images, base)
            app_build_s = build_app(base)
            stand_ins.result()
    return base, app_build_s


def build_compose_images(base: str) -> None:
    """Build the stand-ins for the images the compose file pulls, under the names it uses."""
    from tests.support.fake_gcs import binary_path

    build(COMPOSE_IMAGES["redis"], IMAGES / "redis", base=base)
    build(COMPOSE_IMAGES["nginx"], IMAGES / "nginx", base=base)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(IMAGES / "fake-gcs" / "Dockerfile", tmp)
        shutil.copy2(binary_path(), Path(tmp) / "fake-gcs-server")
        build(COMPOSE_IMAGES["fake-gcs"], Path(tmp), base=base)


if __name__ == "__main__":
    # .ci/run starts this in the background so the images build while the rest of the suite runs.
    started = time.monotonic()
    tag, seconds = build_all()
    print(f"images ready on {tag} in {time.monotonic() - started:.0f} s (app image build {seconds:.0f} s)")
