"""The AWS CLI of .venv, imported once and forked for each run.

Each `aws` command of a worker script costs about half a CPU-second before it sends a request,
nearly all of it Python importing awscli and botocore and compiling their regular expressions;
the local workers run hundreds of them. This process does that work once. `bin/aws` (the `aws`
first on a local worker's PATH) sends it its arguments, environment, working directory, umask
and its standard input, output and error (the descriptors themselves); the server forks, and the
child runs `awscli.clidriver.main()` — the code `.venv/bin/aws` runs — in that state, so the
script sees the real CLI's output, files and exit status. A supervisor between the two reports
how the run ended and kills it if the client goes away. Before serving, the server also parses
the model files runs load (`warm_up`), which was most of a run's CPU after the imports.

usage: python server.py SOCKET
"""

import gc
import io
import json
import os
import signal
import socket
import struct
import sys
import threading

# What every run imports (awscli.clidriver pulls in botocore; the handlers, the S3 transfer
# manager and the commands' customizations are imported by the driver as it starts).
import awscli.clidriver  # noqa: E402
import awscli.handlers  # noqa: E402,F401
import awscli.customizations.s3.subcommands  # noqa: E402,F401
import botocore.session  # noqa: E402,F401
import s3transfer.manager  # noqa: E402,F401

# awscli's botocore, under the name it imports it by.
import botocore.exceptions  # noqa: E402
import botocore.loaders  # noqa: E402

AWSCLI_DATA = os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data")
# The services the workers' scripts and the tests' own commands call: their models are parsed
# here once, before any fork.
WARM_SERVICES = ("s3", "secretsmanager", "cloudfront", "cloudformation", "lambda", "events")
STANDARD_STREAMS = 3
EXITED, KILLED = 0, 1


# After the imports, most of a run's CPU went to parsing the same model files (each service's
# JSON, its endpoint rules, the partitions) and to listing the data directories, again in each
# run. The server does both once: each run is a fork, and gets the server's parsed copy the
# first time it loads a file (a later load of the same file in that run parses it again, as
# before, so no two loads in one run share an object); a listing is the same list, copied.
PARSED_FILES = {}
LISTED_SERVICES = {}
parse_file = botocore.loaders.JSONFileLoader._load_file
list_services = botocore.loaders.Loader.list_available_services


def load_file_parsed_before(self, full_path, open_method):
    data = PARSED_FILES.pop(full_path, None)
    return data if data is not None else parse_file(self, full_path, open_method)


def list_services_listed_before(self, type_name):
    key = (tuple(self.search_paths), type_name)
    if key not in LISTED_SERVICES:
        LISTED_SERVICES[key] = list_services(self, type_name)
    return list(LISTED_SERVICES[key])


def warm_up():
    """Parses and lists what runs load: the CLI's own data and each of WARM_SERVICES' clients."""

    def parse_and_keep(self, full_path, open_method):
        data = parse_file(self, full_path, open_method)
        if data is not None:
            PARSED_FILES[full_path] = data
        return data

    os.environ["AWS_DATA_PATH"] = AWSCLI_DATA  # as a run sets it (run_cli)
    botocore.loaders.JSONFileLoader._load_file = parse_and_keep
    botocore.loaders.Loader.list_available_services = list_services_listed_before
    session = awscli.clidriver.create_clidriver().session
    loader = session.get_component("data_loader")
    for service in WARM_SERVICES:
        # No request is sent: a client only loads its models and resolves nothing yet.
        session.create_client(
            service,
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="warm-up",
            aws_secret_access_key="warm-up",
        )
        # A command that pages or waits loads these too.
        for kind in ("paginators-1", "waiters-2"):
            try:
                loader.load_service_model(service, kind)
            except botocore.exceptions.DataNotFoundError:
                pass
    botocore.loaders.JSONFileLoader._load_file = load_file_parsed_before
    if not PARSED_FILES:
        sys.exit("tests/aws-cli/server.py: the warm-up parsed no model file; awscli's loader has changed")


def read_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the client went away")
        data += chunk
    return data


def receive_request(conn):
    """The client's standard streams (sent with the first byte), then its request as JSON."""
    _, fds, _, _ = socket.recv_fds(conn, 1, STANDARD_STREAMS)
    if len(fds) != STANDARD_STREAMS:
        raise EOFError(f"the client sent {len(fds)} descriptors, not {STANDARD_STREAMS}")
    (size,) = struct.unpack("!I", read_exactly(conn, 4))
    return json.loads(read_exactly(conn, size)), fds


def stream(fd, mode, template):
    """A text stream on descriptor `fd` as Python makes it at startup (buffered unless a TTY)."""
    binary = io.open(fd, mode + "b", buffering=-1, closefd=False)
    return io.TextIOWrapper(
        binary,
        encoding=template.encoding,
        errors=template.errors,
        line_buffering=mode == "w" and os.isatty(fd),
        write_through=template is sys.stderr,
    )


def run_cli(request, fds):
    """In the forked child: becomes the client's process state, runs the CLI, exits as it does."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    if os.environ.get("LC_CTYPE", "") == "UTF-8":  # as .venv/bin/aws does
        os.environ["LC_CTYPE"] = "en_US.UTF-8"
    # What importing awscli does to the environment (awscli/__init__.py): its models after the
    # client's own AWS_DATA_PATH.
    data_path = [
        os.path.expanduser(os.path.expandvars(path))
        for path in os.environ.get("AWS_DATA_PATH", "").split(os.pathsep)
        if "AWS_DATA_PATH" in os.environ
    ]
    data_path.append(AWSCLI_DATA)
    os.environ["AWS_DATA_PATH"] = os.pathsep.join(data_path)
    sys.stdin = stream(0, "r", sys.stdin)
    sys.stdout = stream(1, "w", sys.stdout)
    sys.stderr = stream(2, "w", sys.stderr)
    sys.argv = ["aws"] + request["args"]
    try:
        status = awscli.clidriver.main()
    except SystemExit as exit:
        status = exit.code
    except BaseException:  # what the interpreter would print before exiting 1
        import traceback

        traceback.print_exc()
        status = 1
    if status is None:
        status = 0
    elif not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
    for out in (sys.stdout, sys.stderr):
        try:
            out.flush()
        except OSError:
            pass
    os._exit(status & 0xFF)


def supervise(conn):
    """In a child of the server: runs one CLI command for the client on `conn`, reports its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        request, fds = receive_request(conn)
    except (EOFError, OSError, ValueError):
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_cli(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(struct.pack("!q", pid))

    def kill_when_the_client_goes():
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    threading.Thread(target=kill_when_the_client_goes, daemon=True).start()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        report = struct.pack("!ii", KILLED, os.WTERMSIG(status))
    else:
        report = struct.pack("!ii", EXITED, os.WEXITSTATUS(status))
    try:
        conn.sendall(report)
    except OSError:
        pass
    os._exit(0)


def main():
    path = sys.argv[1]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    # Supervisors are reaped by the kernel; each one waits for its own CLI run.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    warm_up()
    # What the server holds stays out of the children's garbage collections: a collection
    # touches every object it tracks, and each touched page would be copied into the run.
    gc.freeze()
    print(f"serving the AWS CLI on {path}", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            supervise(conn)
        conn.close()


if __name__ == "__main__":
    main()
