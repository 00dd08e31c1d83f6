"""The chat page's bundle (Part 14b): `python .ci/web.py build` runs `npm ci && npm run build` in web/ (installing Debian's
nodejs and npm first if they are missing); `python .ci/web.py check` builds and fails if the committed ruvon/web_dist differs."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = "ruvon/web_dist"


def run(*cmd: str, cwd: Path = ROOT) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def ensure_node() -> None:
    if shutil.which("node") and shutil.which("npm"): return
    run("apt-get", "update", "-qq")
    run("apt-get", "install", "-y", "-qq", "nodejs", "npm")


def build() -> None:
    ensure_node()
    run("npm", "ci", "--no-audit", "--no-fund", cwd=ROOT / "web")
    run("npm", "run", "build", cwd=ROOT / "web")


def check() -> None:
    build()
    changed = subprocess.run(["git", "status", "--porcelain", "--", DIST], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    if changed:
        print(changed, file=sys.stderr)
        sys.exit(f"CI: {DIST} is stale: web/ builds to something else (run `python .ci/web.py build` and commit {DIST})")
    print(f"{DIST} matches web/'s build")


if __name__ == "__main__":
    {"build": build, "check": check}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
