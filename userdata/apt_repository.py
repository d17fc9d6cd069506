#!/usr/bin/env python3
"""Stateless apt repository publisher: the file transformations of one suite update.

The signed InRelease of a suite and the indexes it lists are the only state: no database
(reprepro's could be lost) can disagree with what clients see. An update verifies the fetched
indexes against the previous Release, merges the new .debs in and writes the indexes and an
unsigned Release; the caller does the S3 transfers and the signing.

Each index is also written as <its dir>/by-hash/SHA256/<sha256>, a name whose content never
changes. Uploaded before the new InRelease, these let a client holding the old or the new
InRelease fetch exactly the indexes it names: the switch happens when InRelease is replaced.
"""
import argparse, gzip, hashlib, lzma, os, re, subprocess, sys, tempfile
import zlib
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

# The forms of an index, in the order of preference for reading.
COMPRESSIONS = {"": bytes, ".gz": gzip.decompress, ".xz": lzma.decompress}
# Added to a .deb's control fields, before Description (which Debian's archive puts last).
FILE_FIELDS = ("Filename", "Size", "MD5sum", "SHA1", "SHA256")
IDENTITY = ("Package", "Version", "Architecture")  # a new stanza replaces the one it equals
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_~-]*")


class Failure(Exception):
    """A bad input: reported on stderr with exit status 1."""


def parse_paragraphs(text):
    """The paragraphs of a control-file stream, each a list of (field, value) in order; a
    multi-line value keeps its continuation lines verbatim, so formatting round-trips."""
    paragraphs, fields = [], []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if not line.strip():
            paragraphs += [fields] if fields else []
            fields = []
        elif line[0] in " \t":
            if not fields:
                raise Failure(f"line {number} continues no field")
            fields[-1] = (fields[-1][0], fields[-1][1] + "\n" + line)
        else:
            name, colon, value = line.partition(":")
            if not colon or not NAME.fullmatch(name):
                raise Failure(f"line {number} is not a field: {line!r}")
            fields.append((name, value.strip()))
    return paragraphs + [fields] if fields else paragraphs


def format_paragraph(fields):
    return "".join(f"{name}:{'' if value[:1] in ('', chr(10)) else ' '}{value}\n"
                   for name, value in fields)


def field(fields, name):
    return next((value for key, value in fields if key.lower() == name.lower()), None)


def identity(stanza):
    return tuple(field(stanza, name) for name in IDENTITY)


def strip_armour(text):
    """The signed message of a clearsigned file (gpg has checked it), else the text itself."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "-----BEGIN PGP SIGNED MESSAGE-----":
        return text
    try:
        start = lines.index("", 1) + 1  # the armour headers (Hash:) end at the first blank line
        end = lines.index("-----BEGIN PGP SIGNATURE-----", start)
    except ValueError:
        raise Failure("the PGP armour is not a complete clearsigned message") from None
    return "\n".join(line[2:] if line.startswith("- ") else line for line in lines[start:end])


def read_release(path):
    """The fields of a Release or InRelease file, keyed by lower-case name."""
    try:
        with open(path, encoding="utf-8") as file:
            paragraphs = parse_paragraphs(strip_armour(file.read()))
    except (OSError, UnicodeError, Failure) as error:
        raise Failure(f"cannot read {path}: {error}") from None
    return {name.lower(): value for name, value in (paragraphs or [[]])[0]}


def safe_path(path):
    """path, if it is relative and stays below its root (Release paths, Filenames)."""
    if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise Failure(f"{path!r} is not a plain relative path")
    return path


def sha256_entries(release, source):
    """{path: (sha256, size)} of the SHA256 section of a Release read from source, in order."""
    entries = {}
    for line in filter(str.strip, release.get("sha256", "").split("\n")):
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            raise Failure(f"bad SHA256 line in Release: {line.strip()!r}")
        entries[safe_path(parts[2])] = (parts[0].lower(), int(parts[1]))
    if not entries:
        raise Failure(f"{source} has no SHA256 section")
    return entries


def file_digests(path):
    """(size, md5, sha1, sha256) of a file."""
    hashes, size = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()], 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            size += len(chunk)
            for digest in hashes:
                digest.update(chunk)
    return (size, *(digest.hexdigest() for digest in hashes))


def by_hash_path(path, sha256):
    return f"{os.path.dirname(path)}/by-hash/SHA256/{sha256}".lstrip("/")


def version_key(version):
    """A sort key giving Debian version ordering: epoch, upstream version, then revision."""
    epoch, colon, rest = version.partition(":")
    epoch, rest = (epoch, rest) if colon and epoch.isdigit() else ("0", version)
    upstream, dash, revision = rest.rpartition("-")
    upstream, revision = (upstream, revision) if dash else (rest, "")

    def part(text):
        # Runs of non-digits, compared by character ('~' before the end of the run, which is
        # before letters, then other marks), alternate with numbers. Every run but the first
        # starts with a non-digit and findall ends with ("", ""): parts differ before one ends.
        return [([-1 if c == "~" else ord(c) + (0 if c.isalpha() else 256) for c in letters] + [0],
                 int(digits or 0)) for letters, digits in re.findall(r"(\D*)(\d*)", text)]
    return int(epoch), part(upstream), part(revision)


def stanza_order(stanza):
    package, version, architecture = identity(stanza)
    return package, version_key(version), architecture, field(stanza, "Filename") or ""


def deb_stanza(pool_root, relative_path):
    """The Packages stanza of a .deb: its control fields in control-file order, but Package
    first and Description last, with Filename, Size, MD5sum, SHA1, SHA256 before Description."""
    path = os.path.join(pool_root, safe_path(relative_path))
    if not os.path.isfile(path):
        raise Failure(f"{relative_path} is not a file under {pool_root}")
    run = subprocess.run(["dpkg-deb", "--field", path], capture_output=True, text=True)
    if run.returncode:
        raise Failure(f"dpkg-deb cannot read {relative_path}: {run.stderr.strip()}")
    control = [(name, value) for name, value in (parse_paragraphs(run.stdout) or [[]])[0]
               if name.lower() not in {f.lower() for f in FILE_FIELDS}]
    if None in identity(control):
        raise Failure(f"{relative_path} lacks one of the control fields {', '.join(IDENTITY)}")
    fields = control + list(zip(FILE_FIELDS, (relative_path, *map(str, file_digests(path)))))
    rank = {"package": 0, **{name.lower(): 2 for name in FILE_FIELDS}, "description": 3}
    return sorted(fields, key=lambda item: rank.get(item[0].lower(), 1))  # a stable sort


def read_index(suite_dir, index, listed):
    """The stanzas of the best form of an index in suite_dir: of a verified form (one the
    previous Release lists) if there is a previous Release (listed is not None)."""
    for suffix, decompress in COMPRESSIONS.items():
        path = os.path.join(suite_dir, index + suffix)
        if os.path.isfile(path) and (listed is None or index + suffix in listed):
            with open(path, "rb") as file:
                stanzas = parse_paragraphs(decompress(file.read()).decode("utf-8"))
            if any(None in identity(stanza) for stanza in stanzas):
                raise Failure(f"{index + suffix} has a stanza without {', '.join(IDENTITY)}")
            return stanzas
    return []


def verify_previous(suite_dir, listed, regenerated):
    """Fails unless the listed files in suite_dir match the previous Release and each listed
    index (but the forms and diffs of those regenerated) is there in some compression."""
    for path, (sha256, size) in listed.items():
        if os.path.isfile(os.path.join(suite_dir, path)):
            actual_size, _, _, actual = file_digests(os.path.join(suite_dir, path))
            if (actual, actual_size) != (sha256, size):
                raise Failure(f"{path} does not match the previous Release: it has SHA256 {actual} "
                              f"size {actual_size}, the Release lists SHA256 {sha256} size {size}")
    indexes = {next((p[:-len(s)] for s in COMPRESSIONS if s and p.endswith(s)), p) for p in listed}
    for index in (i for i in indexes if i in regenerated or not i.startswith(regenerated)):
        if not any(os.path.isfile(os.path.join(suite_dir, index + s)) for s in COMPRESSIONS):
            raise Failure(f"the previous Release lists {index}, which the suite dir has in no form")


def write_atomic(path, data):
    """Replaces path by renaming a complete temporary file, so it is never half written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would surprise whoever serves the files
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def release_text(fields, files):
    """A Release: fields in order, then MD5Sum and SHA256 of each index (files: {path: bytes})."""
    lines = [f"{name}: {value}" for name, value in fields]
    for section, algorithm in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        lines.append(f"{section}:")
        lines += [f" {algorithm(data).hexdigest()} {len(data):>16} {path}"
                  for path, data in sorted(files.items())]
    return "\n".join(lines) + "\n"


def release_date(text):
    try:
        moment = datetime.now(timezone.utc) if text is None else parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise Failure(f"--date {text!r} is not an RFC 2822 date") from None
    moment = moment.replace(tzinfo=moment.tzinfo or timezone.utc).astimezone(timezone.utc)
    return format_datetime(moment, usegmt=True).replace("GMT", "UTC")


def update(args):
    """Writes the suite's new indexes, by-hash files and Release; prints the upload plan."""
    architectures, suite_dir = args.architectures.split(), args.suite_dir
    for value in [args.suite, args.component, *architectures]:
        if not NAME.fullmatch(value) or value == "all":
            raise Failure(f"{value!r} is not a suite, component or architecture name")
    if not architectures or "\n" in args.origin + args.label + args.description:
        raise Failure("--architectures is empty or --origin, --label or --description has a newline")
    date, previous, listed = release_date(args.date), {}, None
    if args.previous_release:
        previous = read_release(args.previous_release)
        listed = sha256_entries(previous, args.previous_release)
        # The previous Release's architectures stay (a repository reprepro wrote lists i386):
        # an index left out would miss new Architecture: all packages.
        kept = set(previous.get("architectures", "").split()) - set(architectures) - {"source"}
        architectures += sorted(a for a in kept if NAME.fullmatch(a) and a != "all")
    regenerated = tuple(f"{args.component}/binary-{arch}/Packages" for arch in architectures)
    if listed is not None:
        verify_previous(suite_dir, listed, regenerated)
    new = {}
    for relative_path in args.debs:
        stanza = deb_stanza(args.pool_root, relative_path)
        if identity(stanza)[2] not in architectures + ["all"]:
            raise Failure(f"{relative_path} is for architecture {identity(stanza)[2]}, "
                          f"not one of --architectures {args.architectures!r}")
        if new.get(identity(stanza), stanza) != stanza:
            raise Failure(f"two different .debs are {' '.join(identity(stanza))}")
        new[identity(stanza)] = stanza
    files = {}  # the indexes of the new Release: {path: content}
    for arch, index in zip(architectures, regenerated):
        stanzas = [s for s in read_index(suite_dir, index, listed) if identity(s) not in new]
        stanzas += [s for (_, _, architecture), s in new.items() if architecture in (arch, "all")]
        text = "\n".join(map(format_paragraph, sorted(stanzas, key=stanza_order))).encode()
        files[index], files[index + ".gz"] = text, gzip.compress(text, 9, mtime=0)  # deterministic
    for path in listed or {}:
        # Other indexes (another component, Sources...) stay as they are, in the forms present.
        if not path.startswith(regenerated) and os.path.isfile(os.path.join(suite_dir, path)):
            with open(os.path.join(suite_dir, path), "rb") as file:
                files[path] = file.read()
    plan = []  # every input is checked: only now is anything written
    for path, data in sorted(files.items()):
        plan.append(by_hash_path(path, hashlib.sha256(data).hexdigest()))
        write_atomic(os.path.join(suite_dir, plan[-1]), data)
        write_atomic(os.path.join(suite_dir, path), data)
    components = [args.component, *(c for c in previous.get("components", "").split()
                                    if c != args.component)]
    write_atomic(os.path.join(suite_dir, "Release"), release_text([
        ("Origin", args.origin), ("Label", args.label), ("Suite", args.suite),
        ("Codename", args.suite), ("Date", date), ("Architectures", " ".join(architectures)),
        ("Components", " ".join(components)), ("Description", args.description),
        ("Acquire-By-Hash", "yes")], files).encode())
    plan = [f"by-hash {path}" for path in plan] + [f"index {path}" for path in sorted(files)]
    print("\n".join(plan + ["release Release"]))


def check(suite_dir):
    """The problems of a suite as a client would fetch it: [] if it is consistent."""
    names = [n for n in ("InRelease", "Release") if os.path.isfile(os.path.join(suite_dir, n))]
    problems = [] if names else ["the suite dir has neither InRelease nor Release"]
    for name in names:
        try:
            release = read_release(os.path.join(suite_dir, name))
            entries = sha256_entries(release, name)
        except Failure as error:
            problems.append(str(error))
            continue
        by_hash = release.get("acquire-by-hash", "").lower() == "yes"
        for path, (sha256, size) in entries.items():
            for candidate in [path] + [by_hash_path(path, sha256)] * by_hash:
                full = os.path.join(suite_dir, candidate)
                actual_size, *_, actual = file_digests(full) if os.path.isfile(full) else [None] * 4
                if actual is None:
                    problems.append(f"{name}: {candidate} is missing")
                elif (actual, actual_size) != (sha256, size):
                    problems.append(f"{name}: {candidate} has SHA256 {actual} size {actual_size}, "
                                    f"the Release lists {sha256} size {size}")
    return problems


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("references").add_argument("release", metavar="IN_RELEASE_FILE")
    command = commands.add_parser("update")
    for option in ("suite-dir", "suite", "origin", "label", "description", "component",
                   "architectures", "pool-root"):
        command.add_argument(f"--{option}", required=True)
    command.add_argument("--previous-release")
    command.add_argument("--date")
    command.add_argument("debs", nargs="+", metavar="DEB_RELATIVE_PATH")
    commands.add_parser("check").add_argument("--suite-dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "references":
            entries = sha256_entries(read_release(args.release), args.release)
            print("\n".join(f"{sha256} {size} {path}" for path, (sha256, size) in entries.items()))
        elif args.command == "update":
            update(args)
        else:
            problems = check(args.suite_dir)
            print("\n".join(problems) or "ok")
            return 1 if problems else 0
    except (Failure, OSError, UnicodeError, lzma.LZMAError, zlib.error, EOFError) as error:
        print(f"apt_repository.py {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
