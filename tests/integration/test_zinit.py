"""zinit, the process supervisor, driven as a user drives it: service files
in a temporary directory, `zinit init` as a subprocess (also as PID 1 of a
new PID namespace), the control commands, and what lands in files and on
zinit's stdout.

Services record what happened into files (start order, stop order, runs);
the tests wait for conditions with generous upper bounds and never assert
on how fast something happened.
"""
import glob
import os
import signal
import shutil
import stat
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture(scope="session")
def zinit_bin(build_dir) -> Path:
    path = build_dir / "zinit" / "zinit"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"zinit not found at {path}: build it first (ninja -C {build_dir})",
                    pytrace=False)
    return path


def wait_for(cond, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Zinit:
    """One zinit instance: its service directory, socket and output files."""

    def __init__(self, binary: Path, tmp: Path):
        self.binary = str(binary)
        self.tmp = tmp
        self.dir = tmp / "services"
        self.dir.mkdir()
        # unix socket paths are short: keep it out of pytest's long tmp path
        self.sockdir = tempfile.mkdtemp(prefix="zi-", dir="/tmp")
        self.sock = os.path.join(self.sockdir, "zinit.sock")
        self.out_path = tmp / "zinit.out"
        self.err_path = tmp / "zinit.err"
        self.mark = f"ZINIT_TEST_MARK={tmp}"
        self.proc = None

    def service(self, name, text):
        (self.dir / f"{name}.yaml").write_text(textwrap.dedent(text))

    def script(self, name, body):
        p = self.tmp / name
        p.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        p.chmod(0o755)
        return p

    def env(self):
        env = dict(os.environ)
        env["QSFS_LOG"] = "info"
        env["ZINIT_TEST_MARK"] = str(self.tmp)
        return env

    def argv(self, container=True, ready_timeout=None):
        a = [self.binary, "init", "-c", str(self.dir), "-s", self.sock]
        if container:
            a.append("--container")
        if ready_timeout:
            a += ["--ready-timeout", str(ready_timeout)]
        return a

    def start(self, container=True, ready_timeout=None, prefix=(), wait_socket=True,
              merged=False):
        """merged: stderr (zinit's own messages) into the stdout file, in the
        order written, as a log file gets them."""
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([*prefix, *self.argv(container, ready_timeout)],
                                     stdout=self.out,
                                     stderr=subprocess.STDOUT if merged else self.err,
                                     env=self.env(), stdin=subprocess.DEVNULL)
        if wait_socket:
            wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                     what="the control socket")
            assert self.proc.poll() is None, f"zinit exited early:\n{self.stderr()}"
        return self.proc

    def run_ctl(self, *args, sock=None):
        p = subprocess.run([self.binary, "-s", sock or self.sock, *map(str, args)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=20, env=self.env())
        return p

    def ctl(self, *args):
        p = self.run_ctl(*args)
        assert p.returncode == 0, f"zinit {' '.join(map(str, args))}: {p.returncode}\n{p.stderr}"
        return p.stdout

    def states(self):
        out = self.ctl("list")
        return dict(line.split(": ", 1) for line in out.splitlines())

    def wait_state(self, name, state, timeout=10.0):
        wait_for(lambda: self.states().get(name) == state, timeout,
                 f"{name} to be {state} (now: {self.states().get(name)})")

    def status(self, name):
        return dict(line.split(": ", 1) for line in self.ctl("status", name).splitlines())

    def wait_exit(self, timeout=20.0):
        return self.proc.wait(timeout=timeout)

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def marked_pids(self):
        """Every process that carries this instance's environment mark."""
        pids = []
        for env in glob.glob("/proc/[0-9]*/environ"):
            try:
                data = open(env, "rb").read()
            except OSError:
                continue
            if self.mark.encode() in data.split(b"\0"):
                pids.append(int(env.split("/")[2]))
        return pids

    def teardown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.marked_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.sockdir, ignore_errors=True)
        if self.proc:
            self.out.close()
            self.err.close()
            err = self.stderr()
            for m in SANITIZER_MARKS:
                assert m not in err, f"zinit reported a sanitizer error:\n{err}"


@pytest.fixture
def zi(zinit_bin, tmp_path):
    z = Zinit(zinit_bin, tmp_path)
    yield z
    z.teardown()


# ---- start order, readiness, oneshots ----

def test_start_order_follows_after_and_output_is_prefixed(zi):
    t = zi.tmp
    zi.service("init", f"""\
        exec: sh -c 'echo init >> {t}/order; echo init says hi; echo init warns >&2'
        oneshot: true
        """)
    zi.service("db", f"""\
        exec: sh -c 'echo db >> {t}/order; touch {t}/db.ready; exec sleep 1000'
        test: test -f {t}/db.ready
        after: [init]
        """)
    zi.service("web", f"""\
        exec: sh -c 'echo web >> {t}/order; touch {t}/web.ready; exec sleep 1000'
        test: test -f {t}/web.ready
        after:
          - db
        log: stdout
        """)
    zi.service("last", f"""\
        exec: sh -c 'echo last >> {t}/order'
        oneshot: true
        after: [web, init]
        """)
    zi.start()
    zi.wait_state("last", "success")
    assert (t / "order").read_text().split() == ["init", "db", "web", "last"]
    st = zi.states()
    assert st == {"init": "success", "db": "running", "web": "running", "last": "success"}
    zi.ctl("shutdown")
    assert zi.wait_exit() == 0, zi.stderr()
    lines = zi.stdout().splitlines()
    assert "init: init says hi" in lines
    assert "init: init warns" in lines          # stderr too


def test_last_output_comes_before_the_exit_line(zi):
    """A service's output ends up in the log before zinit's line saying the
    service ended, each line once (the quick start's log showed a service's
    last lines after its exit, and ./dev down looked out of order)."""
    for i in range(5):
        zi.service(f"talker{i}", """\
            exec: sh -c 'i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo done'
            oneshot: true
            """)
    zi.start(merged=True)
    for i in range(5):
        zi.wait_state(f"talker{i}", "success")
    zi.ctl("shutdown")
    assert zi.wait_exit() == 0
    out = zi.stdout().splitlines()
    for i in range(5):
        mine = [n for n, line in enumerate(out) if line.startswith(f"talker{i}: ")]
        assert [out[n] for n in mine] == [f"talker{i}: line {k}" for k in range(2000)] + [
            f"talker{i}: done"]
        ended = [n for n, line in enumerate(out) if f"zinit: talker{i}: exited" in line]
        assert len(ended) == 1 and ended[0] > mine[-1], out[mine[-1] - 2:ended[0] + 2]


def test_dependent_waits_until_test_passes(zi):
    t = zi.tmp
    # the test passes on its 4th attempt only; it counts its attempts
    zi.service("slow", f"""\
        exec: sleep 1000
        test: sh -c 'n=$(cat {t}/attempts 2>/dev/null || echo 0); echo $((n+1)) > {t}/attempts; [ $n -ge 3 ]'
        """)
    zi.service("dep", f"""\
        exec: sh -c 'cat {t}/attempts > {t}/seen; exec sleep 1000'
        after: [slow]
        """)
    zi.start()
    zi.wait_state("dep", "running")
    # dep started only after the attempt that passed
    assert (t / "seen").read_text().strip() == "4"
    assert zi.status("slow")["state"] == "running"
    zi.ctl("shutdown")
    assert zi.wait_exit() == 0, zi.stderr()


def test_test_that_never_passes_blocks_dependents_and_fails_container(zi):
    t = zi.tmp
    zi.service("never", "exec: sleep 1000\ntest: 'false'\n")
    zi.service("child", f"exec: touch {t}/child-ran\nafter: [never]\noneshot: true\n")
    zi.start(ready_timeout=1)
    zi.wait_state("never", "test-failed")
    st = zi.status("child")
    assert st["state"] == "blocked"
    assert st["waiting for"] == "never (test-failed)"
    assert not (t / "child-ran").exists()
    zi.ctl("shutdown")
    assert zi.wait_exit() == 1
    assert "never: its test never passed" in zi.stderr()


def test_oneshot_success_starts_dependents_failure_does_not(zi):
    t = zi.tmp
    zi.service("good", "exec: 'true'\noneshot: true\n")
    zi.service("bad", "exec: sh -c 'exit 3'\noneshot: true\n")
    zi.service("after-good", f"exec: touch {t}/after-good\noneshot: true\nafter: [good]\n")
    zi.service("after-bad", f"exec: touch {t}/after-bad\noneshot: true\nafter: bad\n")
    zi.service("after-both", f"exec: touch {t}/after-both\noneshot: true\nafter: [good, bad]\n")
    zi.start()
    zi.wait_state("after-good", "success")
    zi.wait_state("bad", "failed")
    assert (t / "after-good").exists()
    assert zi.states()["after-bad"] == "blocked"
    assert zi.states()["after-both"] == "blocked"
    assert not (t / "after-bad").exists() and not (t / "after-both").exists()
    assert zi.status("bad")["last exit"] == "exited with status 3"
    zi.ctl("shutdown")
    assert zi.wait_exit() == 1       # a oneshot failed
    assert "bad: exited with status 3: failed" in zi.stderr()


# ---- restarts ----

def test_crashed_service_is_restarted_with_backoff(zi):
    t = zi.tmp
    zi.service("crash", f"exec: sh -c 'date +%s.%N >> {t}/runs; exit 3'\n")
    zi.start()
    wait_for(lambda: (t / "runs").exists() and len((t / "runs").read_text().split()) >= 3,
             timeout=15, what="three runs")
    runs = [float(x) for x in (t / "runs").read_text().split()]
    # lower bounds only: a restart waits 1 s, the next one 2 s
    assert runs[1] - runs[0] >= 0.9
    assert runs[2] - runs[1] >= 1.8
    st = zi.status("crash")
    assert int(st["restarts"]) >= 2
    assert st["last exit"] == "exited with status 3"
    assert "crash: exited with status 3; restarting in 1.0 s" in zi.stderr()
    assert "restarting in 2.0 s" in zi.stderr()
    zi.ctl("shutdown")
    # its last run crashed: not a clean end
    assert zi.wait_exit() == 1


# ---- shutdown ----

def test_shutdown_in_reverse_order_with_sigkill_escalation(zi):
    t = zi.tmp

    def svc(name, extra=""):
        zi.service(name, f"exec: {t}/{name}.sh\n" + extra)
        zi.script(f"{name}.sh", f"""\
            trap 'echo {name} >> {t}/stops; exit 0' TERM
            echo up > {t}/{name}.up
            while :; do sleep 0.1; done
            """)

    svc("base")
    svc("mid", "after: [base]\n")
    svc("top", "after: [mid]\n")
    # ignores SIGTERM: killed after its 1 s shutdown_timeout
    zi.service("stubborn", f"exec: {t}/stubborn.sh\nafter: [base]\nshutdown_timeout: 1\n")
    zi.script("stubborn.sh", f"""\
        trap 'echo stubborn-ignores-term >> {t}/stops' TERM
        echo up > {t}/stubborn.up
        while :; do sleep 0.1; done
        """)
    zi.start()
    for n in ("base", "mid", "top", "stubborn"):
        wait_for(lambda: (t / f"{n}.up").exists(), what=f"{n} up")
    zi.proc.send_signal(signal.SIGTERM)
    code = zi.wait_exit(timeout=20)
    stops = (t / "stops").read_text().split()
    assert stops.index("top") < stops.index("mid") < stops.index("base")
    # base is stopped only after stubborn, which depends on it, is gone
    assert stops.index("stubborn-ignores-term") < stops.index("base")
    assert code == 1, "a service was SIGKILLed: the container exit status must say so"
    err = zi.stderr()
    assert "stubborn: still running 1 s after SIGTERM: sending SIGKILL" in err
    assert "stubborn: killed by SIGKILL" in err
    assert not zi.marked_pids(), "every service process is gone"


def test_container_exits_zero_after_clean_shutdown(zi):
    t = zi.tmp
    zi.service("plain", "exec: sleep 1000\n")
    zi.service("done", "exec: 'true'\noneshot: true\n")
    # stops only on SIGINT (its configured stop signal)
    zi.service("intonly", f"exec: {t}/intonly.sh\nsignal:\n  stop: SIGINT\nshutdown_timeout: 5\n"
               "after: [plain]\n")
    # a program, not sh: dash runs an INT trap only after its foreground
    # child ends, and under load that missed the 5 s (a flaky CI run)
    zi.script("intonly.sh", f"""\
        exec python3 -c '
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        def stop(*a):
            open("{t}/int", "w").write("got-int")
            sys.exit(0)
        signal.signal(signal.SIGINT, stop)
        open("{t}/intonly.up", "w").write("up")
        while True:
            time.sleep(1)
        '
        """)
    zi.start()
    wait_for(lambda: (t / "intonly.up").exists(), what="intonly up")
    zi.wait_state("done", "success")
    zi.proc.send_signal(signal.SIGINT)
    assert zi.wait_exit() == 0, zi.stderr()
    assert (t / "int").read_text().strip() == "got-int"
    assert "sending SIGKILL" not in zi.stderr()
    assert not os.path.exists(zi.sock), "the socket is removed at exit"


# ---- control commands ----

def test_control_commands(zi):
    zi.service("sleeper", "exec: sh -c 'echo hello from sleeper; exec sleep 1000'\n")
    zi.service("talker", "exec: sh -c 'echo one; echo two; exec sleep 1000'\nafter: [sleeper]\n")
    zi.service("quiet", "exec: sh -c 'echo secret; exec sleep 1000'\nlog: null\n")
    zi.start(container=False)
    mode = os.stat(zi.sock).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600

    wait_for(lambda: set(zi.states().values()) == {"running"}, what="all running")
    assert zi.ctl("list").splitlines() == ["quiet: running", "sleeper: running",
                                           "talker: running"]
    # without -s the client takes $ZINIT_SOCKET (scripts need no alias)
    p = subprocess.run([zi.binary, "list"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, ZINIT_SOCKET=zi.sock))
    assert p.returncode == 0 and p.stdout.splitlines() == [
        "quiet: running", "sleeper: running", "talker: running"], (p.stdout, p.stderr)
    st = zi.status("talker")
    assert st["name"] == "talker" and st["state"] == "running" and st["target"] == "up"
    assert st["after"] == "sleeper" and st["last exit"] == "none"
    pid = int(st["pid"])
    assert pid > 0 and os.path.exists(f"/proc/{pid}")

    # log: from the ring, one service or all in arrival order; log: null keeps nothing
    wait_for(lambda: "talker: two" in zi.ctl("log"), what="talker's output in the ring")
    assert zi.ctl("log", "talker").splitlines() == ["talker: one", "talker: two"]
    assert "sleeper: hello from sleeper" in zi.ctl("log").splitlines()
    assert "secret" not in zi.ctl("log") and zi.ctl("log", "quiet") == ""

    # stop: signalled, not restarted
    zi.ctl("stop", "talker")
    zi.wait_state("talker", "stopped")
    st = zi.status("talker")
    assert st["pid"] == "0" and st["target"] == "down"
    assert st["last exit"] == "killed by SIGTERM"
    assert not os.path.exists(f"/proc/{pid}/stat") or \
        open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
    time.sleep(1.5)                      # longer than the first restart backoff
    assert zi.states()["talker"] == "stopped"

    # start: runs again, with a new process
    zi.ctl("start", "talker")
    zi.wait_state("talker", "running")
    pid2 = int(zi.status("talker")["pid"])
    assert pid2 not in (0, pid)

    # restart: stopped and started again
    zi.ctl("restart", "talker")
    wait_for(lambda: zi.status("talker")["pid"] not in ("0", str(pid2)) and
             zi.states()["talker"] == "running", what="talker restarted")

    # unknown service, bad usage
    for cmd in ("status", "start", "stop", "restart", "log"):
        p = zi.run_ctl(cmd, "nosuch")
        assert p.returncode == 1
        assert "zinit: unknown service 'nosuch'" in p.stderr
    p = zi.run_ctl("status")
    assert p.returncode == 2 and "needs one service name" in p.stderr
    p = zi.run_ctl("frobnicate")
    assert p.returncode == 2 and "unknown command" in p.stderr

    # shutdown through the socket; without --container the exit status is 0
    assert "shutting down" in zi.ctl("shutdown")
    assert zi.wait_exit() == 0, zi.stderr()
    p = zi.run_ctl("list")
    assert p.returncode == 1
    assert p.stderr.startswith(f"zinit: cannot reach {zi.sock}: ")
    # everything went to stdout prefixed, except the null-logged service
    out = zi.stdout().splitlines()
    assert "sleeper: hello from sleeper" in out and "talker: one" in out
    assert not any("secret" in line for line in out)


def test_log_follow(zi):
    zi.service("ticker", "exec: sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done'\n")
    zi.service("other", "exec: sh -c 'while :; do echo other; sleep 0.1; done'\n")
    zi.start(container=False)
    wait_for(lambda: len(zi.ctl("log", "ticker").splitlines()) >= 3, what="three ticks")
    before = len(zi.ctl("log", "ticker").splitlines())
    follower = subprocess.Popen([zi.binary, "-s", zi.sock, "log", "-f", "ticker"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(zi.ctl("log", "ticker").splitlines()) >= before + 5,
                 what="five more ticks")
        p = zi.run_ctl("log", "-f", "nosuch")
        assert p.returncode == 1 and "unknown service 'nosuch'" in p.stderr
        zi.ctl("shutdown")
        out, err = follower.communicate(timeout=20)   # ends when zinit exits
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 0, err
    lines = out.splitlines()
    # the ring first, then the new lines as they came: no gap, no repeat,
    # nothing of the other service
    assert all(line.startswith("ticker: tick ") for line in lines), lines
    ticks = [int(line.split()[-1]) for line in lines]
    assert ticks == list(range(1, len(ticks) + 1))
    assert len(ticks) >= before + 5
    assert zi.wait_exit() == 0, zi.stderr()


def test_no_socket_is_a_clear_error(zi):
    p = zi.run_ctl("list", sock=os.path.join(zi.sockdir, "absent.sock"))
    assert p.returncode == 1
    assert "zinit: cannot reach" in p.stderr and "absent.sock" in p.stderr
    assert "No such file or directory" in p.stderr


# ---- bad service files ----

@pytest.mark.parametrize("files,message", [
    ({"a": "exec: a\nafter: [b]\n", "b": "exec: b\nafter:\n  - a\n"},
     "a.yaml:2: dependency cycle: a -> b -> a"),
    ({"a": "exec: a\noneshot: maybe\n"}, "a.yaml:2: oneshot: expected true or false, got 'maybe'"),
    ({"a": "exec: a\nafter: 3\n"}, "a.yaml:2: after: expected a list"),
    ({"a": "exec: a\n\nafter: [nosuch]\n"}, "a.yaml:3: after: unknown service 'nosuch'"),
    ({"a": "exec: a\nsignal:\n  stop: SIGNOPE\n"}, "a.yaml:3: signal.stop: unknown signal 'SIGNOPE'"),
    ({"a": "exec: a\nshutdown_timeout: -5\n"}, "a.yaml:2: shutdown_timeout: must not be negative"),
    ({"a": "exec: a\nrestart: always\n"}, "a.yaml:2: unknown key 'restart'"),
    ({"a": "exec: [a\n"}, "a.yaml:2: YAML syntax error"),
])
def test_bad_service_files_exit_nonzero(zi, files, message):
    for name, text in files.items():
        zi.service(name, text)
    p = subprocess.run(zi.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=20, env=zi.env())
    assert p.returncode == 1
    assert f"{zi.dir}/{message}" in p.stderr, p.stderr
    assert "not starting anything" in p.stderr
    assert not os.path.exists(zi.sock)
    for m in SANITIZER_MARKS:
        assert m not in p.stderr


# ---- output, exec splitting, env, dir ----

def test_output_partial_and_long_lines_env_dir_and_splitting(zi):
    t = zi.tmp
    work = t / "work dir"
    work.mkdir()
    zi.service("partial", "exec: printf 'no newline at the end'\noneshot: true\n")
    zi.service("long", "exec: sh -c 'head -c 10000 /dev/zero | tr \"\\\\0\" x; echo; echo after'\n"
               "oneshot: true\n")
    zi.service("split", "exec: printf '[%s]' \"a  b\" 'c \"d\"' e\\ f\noneshot: true\n")
    zi.service("envdir", f"exec: sh -c 'echo \"$GREETING from $(pwd)\"'\noneshot: true\n"
               f"env:\n  GREETING: hello there\ndir: {work}\n")
    zi.service("badcmd", "exec: /nonexistent/prog --flag\noneshot: true\n")
    zi.start()
    for n in ("partial", "long", "split", "envdir"):
        zi.wait_state(n, "success")
    zi.wait_state("badcmd", "failed")
    zi.ctl("shutdown")
    assert zi.wait_exit() == 1          # badcmd failed
    out = zi.stdout().splitlines()
    assert "partial: no newline at the end" in out
    longs = [line[len("long: "):] for line in out if line.startswith("long: ")]
    assert longs[-1] == "after"
    pieces = longs[:-1]
    assert len(pieces) >= 3 and all(set(p) == {"x"} for p in pieces)
    assert sum(len(p) for p in pieces) == 10000
    assert "split: [a  b][c \"d\"][e f]" in out
    assert f"envdir: hello there from {work}" in out
    assert "badcmd: cannot run '/nonexistent/prog': No such file or directory" in zi.stderr()


# ---- zombies ----

def orphan_services(zi):
    """`orphans` leaves 5 processes behind that outlive their parent and
    record their parent pid; `check`, after it, waits for them to exit and
    counts the zombie children of zinit (its own parent)."""
    t = zi.tmp
    zi.script("orphans.sh", f"""\
        for i in 1 2 3 4 5; do
          ( sh -c 'sleep 0.3; cut -d" " -f4 /proc/$$/stat >> {t}/ppids' & )
        done
        """)
    (t / "check.py").write_text(textwrap.dedent(f"""\
        import glob, os, time
        def zombie_children(parent):
            z = []
            for f in glob.glob('/proc/[0-9]*/stat'):
                try:
                    s = open(f).read()
                except OSError:
                    continue
                fields = s[s.rindex(')') + 2:].split()
                if fields[0] == 'Z' and int(fields[1]) == parent:
                    z.append(s.strip())
            return z
        zinit = os.getppid()
        end = time.time() + 10
        while time.time() < end:
            try:
                n = len(open('{t}/ppids').read().split())
            except OSError:
                n = 0
            if n == 5:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        end = time.time() + 5
        while zombie_children(zinit) and time.time() < end:
            time.sleep(0.1)
        with open('{t}/result.tmp', 'w') as f:
            f.write(f"zinit={{zinit}} comm={{open(f'/proc/{{zinit}}/comm').read().strip()}}\\n")
            f.write(f"zombies={{len(zombie_children(zinit))}}\\n")
        os.rename('{t}/result.tmp', '{t}/result')
        """))
    zi.service("orphans", f"exec: {t}/orphans.sh\noneshot: true\n")
    zi.service("check", f"exec: /usr/bin/python3 {t}/check.py\noneshot: true\nafter: [orphans]\n")


def check_result(zi, want_zinit_pid):
    res = dict(x.split("=", 1) for x in (zi.tmp / "result").read_text().split())
    ppids = (zi.tmp / "ppids").read_text().split()
    assert res["comm"] == "zinit"
    assert res["zinit"] == str(want_zinit_pid)
    # the orphans were reparented to zinit, and zinit reaped them all
    assert ppids == [str(want_zinit_pid)] * 5
    assert res["zombies"] == "0"


def test_orphans_reaped_as_pid1(zi):
    orphan_services(zi)
    zi.start(prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    wait_for(lambda: (zi.tmp / "result").exists(), timeout=20, what="the zombie check")
    check_result(zi, 1)
    assert "zinit: pid 1," in zi.stderr()
    zi.ctl("shutdown")
    assert zi.wait_exit() == 0, zi.stderr()


def test_orphans_reaped_as_subreaper(zi):
    orphan_services(zi)
    zi.start()
    wait_for(lambda: (zi.tmp / "result").exists(), timeout=20, what="the zombie check")
    check_result(zi, zi.proc.pid)
    zi.ctl("shutdown")
    assert zi.wait_exit() == 0, zi.stderr()
