"""The AWS CLI of .venv, imported once and forked for each run.

Each `aws` command of a worker script costs about half a CPU-second before it sends a request,
nearly all of it Python importing awscli and botocore and compiling their regular expressions;
the local workers run hundreds of them. This process does that work once. `bin/aws` (the `aws`
first on a local worker's PATH) sends it its arguments, environment, working directory, umask
and its standard input, output and error (the descriptors themselves); the server forks, and the
child runs `awscli.clidriver.main()` — the code `.venv/bin/aws` runs — in that state, so the
script sees the real CLI's output, files and exit status. A supervisor between the two reports
how the run ended and kills it if the client goes away.

usage: python server.py SOCKET
"""

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

AWSCLI_DATA = os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data")
STANDARD_STREAMS = 3
EXITED, KILLED = 0, 1


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
    print(f"serving the AWS CLI on {path}", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            supervise(conn)
        conn.close()


if __name__ == "__main__":
    main()
