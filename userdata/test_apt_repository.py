"""Tests of apt_repository.py with real .debs built by dpkg-deb.

python3 -m unittest userdata/test_apt_repository.py   (or python3 userdata/test_apt_repository.py)
"""
import gzip, hashlib, os, re, shutil, subprocess, sys, tempfile, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "apt_repository.py")
sys.path.insert(0, HERE)
import apt_repository  # noqa: E402

DATE = "Tue, 01 Dec 2026 12:00:00 +0000"
INDEXES = ["main/binary-amd64/Packages", "main/binary-amd64/Packages.gz",
           "main/binary-arm64/Packages", "main/binary-arm64/Packages.gz"]


def build_deb(pool_root, package, version, architecture):
    """Builds a .deb under pool_root/pool/main/<initial>/hhvm/ and returns its relative path."""
    relative = f"pool/main/h/hhvm/{package}_{version.replace(':', '%3a')}_{architecture}.deb"
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/DEBIAN")
        os.makedirs(f"{root}/usr/share/doc/{package}")
        with open(f"{root}/usr/share/doc/{package}/README", "w") as file:
            file.write(f"{package} {version}\n")
        with open(f"{root}/DEBIAN/control", "w") as file:
            file.write(f"Package: {package}\nVersion: {version}\nArchitecture: {architecture}\n"
                       "Maintainer: HHVM <hhvm@example.com>\nInstalled-Size: 1\nSection: web\n"
                       "Description: a test package\n with a long description\n .\n over lines\n"
                       "Homepage: https://hhvm.com\n")
        os.makedirs(os.path.dirname(os.path.join(pool_root, relative)), exist_ok=True)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root,
                        os.path.join(pool_root, relative)], check=True, stdout=subprocess.DEVNULL)
    return relative


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as file:
        return file.read()


def snapshot(directory):
    """{relative path: content} of every file under directory."""
    return {os.path.relpath(os.path.join(root, name), directory): read(os.path.join(root, name))
            for root, _, names in os.walk(directory) for name in names}


def stanzas(data):
    return apt_repository.parse_paragraphs(data.decode())


class AptRepositoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = tempfile.mkdtemp(prefix="apt-pool-")
        cls.hhvm = build_deb(cls.pool, "hhvm", "4.168.2-1~bookworm", "amd64")
        cls.dev = build_deb(cls.pool, "hhvm-dev", "4.168.2-1~bookworm", "amd64")
        cls.doc = build_deb(cls.pool, "hhvm-doc", "4.168.2-1~bookworm", "all")
        cls.hhvm_later = build_deb(cls.pool, "hhvm", "4.168.10-1~bookworm", "amd64")
        cls.riscv = build_deb(cls.pool, "hhvm", "4.168.2-1~bookworm", "riscv64")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pool)

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="apt-suite-")
        self.addCleanup(shutil.rmtree, self.work)
        self.suite = os.path.join(self.work, "dists", "bookworm")
        os.makedirs(self.suite)

    def run_program(self, *args, status=0):
        run = subprocess.run([sys.executable, PROGRAM, *args], capture_output=True, text=True)
        self.assertEqual(run.returncode, status, f"stdout: {run.stdout}\nstderr: {run.stderr}")
        return run

    def update(self, *debs, previous=None, status=0, suite=None):
        options = ["--previous-release", previous] if previous else []
        return self.run_program(
            "update", "--suite-dir", suite or self.suite, "--suite", "bookworm", "--origin", "HHVM",
            "--label", "HHVM", "--description", "HHVM packages", "--component", "main",
            "--architectures", "amd64 arm64", "--pool-root", self.pool, "--date", DATE, *options, *debs,
            status=status)

    def previous_release(self):
        """A copy of the suite's Release outside it, as the bash script would fetch InRelease."""
        path = os.path.join(self.work, "previous-Release")
        shutil.copyfile(os.path.join(self.suite, "Release"), path)
        return path

    def suite_file(self, path):
        return read(os.path.join(self.suite, path))

    def test_first_publish_into_an_empty_suite(self):
        plan = self.update(self.hhvm, self.dev, self.doc).stdout.splitlines()
        amd64 = stanzas(self.suite_file("main/binary-amd64/Packages"))
        self.assertEqual([apt_repository.field(s, "Package") for s in amd64],
                         ["hhvm", "hhvm-dev", "hhvm-doc"])
        arm64 = stanzas(self.suite_file("main/binary-arm64/Packages"))
        self.assertEqual([apt_repository.field(s, "Package") for s in arm64], ["hhvm-doc"])
        deb = read(os.path.join(self.pool, self.hhvm))
        hhvm = dict(amd64[0])
        self.assertEqual(amd64[0][0], ("Package", "hhvm"))
        self.assertEqual(amd64[0][-1][0], "Description")
        self.assertEqual(hhvm["Description"], "a test package\n with a long description\n .\n over lines")
        self.assertEqual((hhvm["Filename"], hhvm["Size"]), (self.hhvm, str(len(deb))))
        self.assertEqual(hhvm["SHA256"], sha256(deb))
        self.assertEqual(hhvm["SHA1"], hashlib.sha1(deb).hexdigest())
        self.assertEqual(hhvm["MD5sum"], hashlib.md5(deb).hexdigest())
        for index in ("main/binary-amd64/Packages", "main/binary-arm64/Packages"):
            self.assertEqual(gzip.decompress(self.suite_file(index + ".gz")), self.suite_file(index))
            self.assertEqual(self.suite_file(index + ".gz")[4:8], bytes(4))  # mtime 0: deterministic
        files = {path: self.suite_file(path) for path in INDEXES}
        by_hash = [f"by-hash {os.path.dirname(path)}/by-hash/SHA256/{sha256(data)}"
                   for path, data in files.items()]
        self.assertEqual(plan, by_hash + [f"index {path}" for path in INDEXES] + ["release Release"])
        for path, data in files.items():
            self.assertEqual(self.suite_file(f"{os.path.dirname(path)}/by-hash/SHA256/{sha256(data)}"), data)
        self.assertEqual(self.run_program("check", "--suite-dir", self.suite).stdout, "ok\n")

    def test_release_lists_every_index_with_correct_sizes_and_hashes(self):
        self.update(self.hhvm, self.doc)
        release = self.suite_file("Release").decode()
        head, md5_part = release.split("MD5Sum:\n")
        md5_part, sha256_part = md5_part.split("SHA256:\n")
        self.assertEqual(head, "Origin: HHVM\nLabel: HHVM\nSuite: bookworm\nCodename: bookworm\n"
                               "Date: Tue, 01 Dec 2026 12:00:00 UTC\nArchitectures: amd64 arm64\n"
                               "Components: main\nDescription: HHVM packages\nAcquire-By-Hash: yes\n")
        for part, algorithm in ((md5_part, hashlib.md5), (sha256_part, hashlib.sha256)):
            expected = "".join(f" {algorithm(self.suite_file(path)).hexdigest()} "
                               f"{len(self.suite_file(path)):>16} {path}\n" for path in INDEXES)
            self.assertEqual(part, expected)

    def test_second_publish_of_another_version_keeps_the_first(self):
        self.update(self.hhvm, self.dev)
        first = self.suite_file("main/binary-amd64/Packages").decode()
        self.update(self.hhvm_later, previous=self.previous_release())
        second = self.suite_file("main/binary-amd64/Packages").decode()
        versions = [(apt_repository.field(s, "Package"), apt_repository.field(s, "Version"))
                    for s in apt_repository.parse_paragraphs(second)]
        # Debian ordering: 4.168.10 after 4.168.2, which a string sort would not give.
        self.assertEqual(versions, [("hhvm", "4.168.2-1~bookworm"), ("hhvm", "4.168.10-1~bookworm"),
                                    ("hhvm-dev", "4.168.2-1~bookworm")])
        for stanza in first.split("\n\n"):
            self.assertIn(stanza.strip("\n") + "\n", second)
        self.assertEqual(self.run_program("check", "--suite-dir", self.suite).stdout, "ok\n")

    def test_republishing_the_same_debs_is_byte_identical(self):
        first_plan = self.update(self.hhvm, self.dev, self.doc).stdout
        first = snapshot(self.suite)
        second_plan = self.update(self.doc, self.hhvm, self.dev, previous=self.previous_release()).stdout
        self.assertEqual(snapshot(self.suite), first)
        self.assertEqual(second_plan, first_plan)
        self.update(self.hhvm, self.dev, self.doc)  # without the previous Release too
        self.assertEqual(snapshot(self.suite), first)

    def test_references_round_trips_the_release_plain_and_clearsigned(self):
        self.update(self.hhvm, self.doc)
        expected = "".join(f"{sha256(self.suite_file(p))} {len(self.suite_file(p))} {p}\n" for p in INDEXES)
        release = os.path.join(self.suite, "Release")
        self.assertEqual(self.run_program("references", release).stdout, expected)
        signed = os.path.join(self.suite, "InRelease")
        with open(signed, "w") as file:
            file.write("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + read(release).decode()
                       + "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n"
                       "-----END PGP SIGNATURE-----\n")
        self.assertEqual(self.run_program("references", signed).stdout, expected)
        self.assertEqual(self.run_program("check", "--suite-dir", self.suite).stdout, "ok\n")

    def test_references_fails_without_a_sha256_section(self):
        path = os.path.join(self.work, "Release")
        with open(path, "w") as file:
            file.write("Origin: HHVM\nMD5Sum:\n"
                       " d41d8cd98f00b204e9800998ecf8427e 0 main/binary-amd64/Packages\n")
        self.assertIn("no SHA256 section", self.run_program("references", path, status=1).stderr)

    def test_a_tampered_previous_index_fails_naming_it(self):
        self.update(self.hhvm)
        previous = self.previous_release()
        index = os.path.join(self.suite, "main/binary-amd64/Packages")
        listed = sha256(read(index))
        with open(index, "ab") as file:
            file.write(b"\nPackage: evil\nVersion: 1\nArchitecture: amd64\n")
        release = self.suite_file("Release")
        error = self.update(self.dev, previous=previous, status=1).stderr
        self.assertIn("main/binary-amd64/Packages ", error)
        self.assertIn(listed, error)
        self.assertIn(sha256(read(index)), error)
        self.assertEqual(self.suite_file("Release"), release)
        self.assertNotIn(b"hhvm-dev", read(index))

    def test_a_listed_index_missing_in_every_compression_fails(self):
        self.update(self.hhvm)
        previous = self.previous_release()
        os.unlink(os.path.join(self.suite, "main/binary-amd64/Packages"))
        self.update(self.dev, previous=previous)  # Packages.gz is enough
        self.assertIn(b"hhvm-dev", gzip.decompress(self.suite_file("main/binary-amd64/Packages.gz")))
        previous = self.previous_release()
        for suffix in ("", ".gz"):
            os.unlink(os.path.join(self.suite, "main/binary-amd64/Packages" + suffix))
        self.assertIn("main/binary-amd64/Packages", self.update(self.dev, previous=previous, status=1).stderr)

    def test_other_listed_indexes_are_kept_with_by_hash_files(self):
        self.update(self.hhvm)
        sources = b"Package: hhvm\nVersion: 4.168.2-1~bookworm\n"
        os.makedirs(os.path.join(self.suite, "main/source"))
        with open(os.path.join(self.suite, "main/source/Sources"), "wb") as file:
            file.write(sources)
        previous = os.path.join(self.work, "previous-Release")
        with open(previous, "w") as file:
            release = self.suite_file("Release").decode()
            file.write(release.replace("Components: main", "Components: main contrib")
                       + f" {sha256(sources)} {len(sources)} main/source/Sources\n")
        plan = self.update(self.dev, previous=previous).stdout.splitlines()
        self.assertIn("index main/source/Sources", plan)
        self.assertIn(f"by-hash main/source/by-hash/SHA256/{sha256(sources)}", plan)
        self.assertIn(b"Components: main contrib\n", self.suite_file("Release"))
        references = self.run_program("references", os.path.join(self.suite, "Release")).stdout
        self.assertIn(f"{sha256(sources)} {len(sources)} main/source/Sources\n", references)
        self.assertEqual(self.run_program("check", "--suite-dir", self.suite).stdout, "ok\n")

    def test_the_previous_release_architectures_stay_and_get_architecture_all_packages(self):
        self.update(self.hhvm)
        previous = os.path.join(self.work, "previous-Release")
        with open(previous, "w") as file:  # as reprepro declared its distributions
            file.write(self.suite_file("Release").decode().replace(
                "Architectures: amd64 arm64", "Architectures: i386 amd64 source"))
        self.update(self.doc, previous=previous)
        release = self.suite_file("Release").decode()
        self.assertIn("Architectures: amd64 arm64 i386\n", release)
        self.assertIn(b"Package: hhvm-doc\n", self.suite_file("main/binary-i386/Packages"))
        self.assertNotIn(b"Package: hhvm\n", self.suite_file("main/binary-i386/Packages"))
        self.assertIn(" main/binary-i386/Packages.gz\n", release)

    def test_an_architecture_not_in_the_list_fails(self):
        error = self.update(self.hhvm, self.riscv, status=1).stderr
        self.assertIn(self.riscv, error)
        self.assertIn("riscv64", error)
        self.assertEqual(os.listdir(self.suite), [])

    def test_check_names_a_missing_or_altered_index_or_by_hash_file(self):
        self.update(self.hhvm, self.doc)
        data = self.suite_file("main/binary-arm64/Packages.gz")
        for path in ("main/binary-arm64/Packages.gz", f"main/binary-arm64/by-hash/SHA256/{sha256(data)}"):
            for alteration in ("missing", "altered"):
                with self.subTest(path=path, alteration=alteration):
                    copy = os.path.join(self.work, "copy")
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(self.suite, copy)
                    if alteration == "missing":
                        os.unlink(os.path.join(copy, path))
                    else:
                        with open(os.path.join(copy, path), "ab") as file:
                            file.write(b"x")
                    problems = self.run_program("check", "--suite-dir", copy, status=1).stdout
                    self.assertIn(path, problems)
                    self.assertIn(alteration if alteration == "missing" else "size", problems)

    def test_debian_version_ordering(self):
        for lower, higher in [("1.0~rc1", "1.0"), ("1.0", "1.0-1"), ("2.0", "1:0.1"), ("4.168.3", "4.168.10"),
                              ("1.0a", "1.0+"), ("1.0-1~bookworm", "1.0-1"), ("1.0-1", "1.0-1.1")]:
            self.assertLess(apt_repository.version_key(lower), apt_repository.version_key(higher))
        self.assertEqual(apt_repository.version_key("0:1.0-1"), apt_repository.version_key("1.0-1"))


if __name__ == "__main__":
    unittest.main()
