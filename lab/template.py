"""
`make template`: this repository as a Django project template archive, without
its lab, for `django-admin startproject`:

    python -m lab.template            # writes dist/chatroom-template.zip
    django-admin startproject --template=dist/chatroom-template.zip \\
        --extension=... --name=... mysite      (the whole command: COMMAND)

Every file of the product goes in, as it is in the working tree, minus the
lines between "lab: begin" and "lab: end" markers (what only this repository
needs: the lab's make targets, test paths and requirements, the README's
sections about the template itself). The lab does not: bench/, lab/, .ci/ and
the docs of what the lab measured.

Django renders the files whose extension or name the command lists as Django
templates, and renames `project_name` in paths. So the project's name becomes
{{ project_name }} in them and `project_name` in paths, everything else in a
rendered file is wrapped in {% verbatim %} so that it comes out exactly as it
is here, and a file that names the project but would not be rendered stops
the build.
"""

import argparse
import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT = "chatroom"
ARCHIVE = BASE_DIR / "dist" / f"{PROJECT}-template.zip"

# What stays here: the lab, and the docs of what it measured.
LAB = ("bench/", "lab/", ".ci/", "docs/benchmarks.md", "docs/benchmarks/")
LAB += ("docs/reliability.md",)

# The files Django renders: by extension, and by name.
EXTENSIONS = ("py", "md", "txt", "toml", "yml", "sh", "conf", "template", "example")
EXTENSIONS += ("service", "socket", "html", "css")
NAMES = ("Makefile", "Dockerfile", ".gitignore", ".dockerignore")
COMMAND = (
    "django-admin startproject --template={archive} "
    f"--extension={','.join(EXTENSIONS)} --name={','.join(NAMES)} mysite"
)

LAB_BEGIN, LAB_END = "lab: begin", "lab: end"
# Where a name must be lowercase: Docker image and compose project names, Unix
# users and groups. Elsewhere the project's name is used as it was given.
LOWERCASE_LINE = re.compile(
    r"useradd|groupadd|--gid|^USER |^(User|Group)=|sudo -u|chown|:latest|"
    r"docker build|docker tag|COMPOSE_PROJECT_NAME|--project-name|\bimage:"
)
NAME = re.compile(PROJECT, re.IGNORECASE)


class TemplateError(Exception):
    pass


def product_files() -> list[str]:
    """Tracked and new files of the working tree, minus ignored ones and the lab."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=BASE_DIR, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(
        path
        for path in listed.split("\0")
        if path
        and (BASE_DIR / path).is_file()
        and not path.startswith(LAB)
        and not any(part.startswith(".") for part in Path(path).parts[:-1])
    )


def without_lab(text: str, path: str) -> str:
    """The text without its lab blocks (marker lines included). A block between
    two blank lines takes one of them with it."""
    kept, inside, after_block = [], False, False
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if LAB_BEGIN in line or LAB_END in line:
            if (LAB_BEGIN in line) == inside:
                raise TemplateError(f"{path}:{number}: unbalanced lab marker")
            inside = not inside
            after_block = not inside and (not kept or not kept[-1].strip())
            continue
        if not inside and not (after_block and not line.strip()):
            kept.append(line)
        after_block = False
    if inside:
        raise TemplateError(f"{path}: a lab block is never closed")
    return "".join(kept)


def is_rendered(path: str) -> bool:
    name = Path(path).name
    return name in NAMES or name.rsplit(".", 1)[-1] in EXTENSIONS and "." in name


def placeholder(match: re.Match, line: str) -> str:
    found = match.group()
    if found == PROJECT.upper():
        return "{{ project_name|upper }}"
    if found != PROJECT:
        raise TemplateError(f"the project's name spelt {found!r}: write {PROJECT!r}")
    # A path or a module (chatroom/, chatroom.asgi) keeps the name as given.
    followed_by = line[match.end() : match.end() + 1]
    if LOWERCASE_LINE.search(line) and followed_by not in ("/", "."):
        return "{{ project_name|lower }}"
    return "{{ project_name }}"


def as_template(text: str) -> str:
    """Django template source that renders to `text`, the project's name made a
    placeholder."""
    pieces = []
    for line in text.splitlines(keepends=True):
        position = 0
        for match in NAME.finditer(line):
            pieces.append(verbatim(line[position : match.start()]))
            pieces.append(placeholder(match, line))
            position = match.end()
        pieces.append(verbatim(line[position:]))
    return "".join(pieces)


def verbatim(text: str) -> str:
    # Django's template tags all start with "{"; and no "{" or "}" may touch
    # the placeholders.
    if "{" in text or "}" in text:
        return "{% verbatim %}" + text + "{% endverbatim %}"
    return text


def build(archive: Path = ARCHIVE) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    top = f"{PROJECT}-template"
    partial = archive.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
        for path in product_files():
            source = BASE_DIR / path
            data = source.read_bytes()
            if is_rendered(path):
                text = without_lab(data.decode("utf-8"), path)
                data = as_template(text).encode("utf-8")
            elif NAME.search(data.decode("utf-8", errors="replace")):
                raise TemplateError(
                    f"{path} names the project but Django would copy it as it "
                    "is: add its extension or name to lab/template.py"
                )
            name = "/".join(
                part.replace(PROJECT, "project_name") for part in Path(path).parts
            )
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=(2026, 1, 1, 0, 0, 0))
            mode = stat.S_IMODE(source.stat().st_mode) | 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, data)
    os.replace(partial, archive)
    return archive


def generate(name: str, into: Path, *, template: str | Path = ARCHIVE) -> Path:
    """Run the README's startproject command for `name` in the folder `into`,
    with this interpreter's Django; the new project's folder."""
    arguments = COMMAND.format(archive=template).split()[1:-1]
    into.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "django", *arguments, name],
        cwd=into, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise TemplateError(f"startproject {name} failed: {result.stderr.strip()}")
    return into / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ARCHIVE)
    parser.add_argument(
        "--generate", metavar="NAME", help="then start a project called NAME from it"
    )
    parser.add_argument("--into", type=Path, default=Path("."), help="its folder")
    args = parser.parse_args()
    try:
        archive = build(args.output)
        if args.generate:
            print(generate(args.generate, args.into, template=archive))
            return
    except TemplateError as error:
        sys.exit(f"make template: {error}")
    shown = os.path.relpath(archive)
    print(f"Wrote {shown}. Start a project from it with:\n")
    print(f"    {COMMAND.format(archive=shown)}")


if __name__ == "__main__":
    main()
