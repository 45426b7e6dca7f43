// `multinode run -- PROGRAM` on real foreign workers (Debian's /usr/bin/python3
// running a small script written by the test): the systemd protocols they are
// started with (LISTEN_FDS, LISTEN_PID = their own pid, LISTEN_FDNAMES, fd 3
// served, nothing else inherited, NOTIFY_SOCKET, WATCHDOG_USEC/PID), the argument
// placeholders, both readiness modes and a rolling restart under a steady client,
// a hung worker replaced, output relayed in whole prefixed lines (cut and marked
// past --max-line), a flood bounded, the control subcommands, crash-loop backoff,
// graceful stop (status 0) with escalation, and workers gone with a killed supervisor.
#include "process.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace multinode::test {
namespace {

namespace json = boost::json;

constexpr const char* python = "/usr/bin/python3";

// The worker: python3 worker.py MODE [ARG]. Every mode but crash, flood's slot 1 and
// stubborn serves fd 3: a line in, the worker's pid and a newline out; SIGTERM stops
// it once the connection in hand is answered.
constexpr const char* worker_script = R"PY(
import json, os, signal, socket, sys, time
mode = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else ""

def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(message.encode(), address)
    s.close()

stopping = False
def on_term(*_):
    global stopping
    stopping = True

def serve(sock, between=None):
    signal.signal(signal.SIGTERM, on_term)
    sock.settimeout(0.05)
    while not stopping:
        if between:
            between()
        try:
            c, _ = sock.accept()
        except socket.timeout:
            continue
        c.settimeout(5)
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(100)
            if not chunk:
                break
            data += chunk
        c.sendall(b"%d\n" % os.getpid())
        c.close()
    sys.exit(0)

def listener():
    return socket.socket(fileno=3)

if mode == "env":
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            fds.append((int(name), os.readlink("/proc/self/fd/" + name)))
        except OSError:
            pass  # the directory listdir had open
    keys = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
            "MULTINODE_ID", "MULTINODE_SLOT", "MULTINODE_NODES", "MULTINODE_WORKER_ID", "MULTINODE_CONTROL_FD"]
    print(json.dumps({"pid": os.getpid(), "env": {k: os.environ.get(k) for k in keys},
                      "args": sys.argv[3:], "fds": sorted(fds)}), flush=True)
    serve(listener())
elif mode == "notify":  # READY=1 once the file arg exists (or at once without arg)
    s = listener()
    while arg and not os.path.exists(arg):
        time.sleep(0.02)
    time.sleep(0.1)
    notify("STATUS=warmed up\nREADY=1")
    serve(s)
elif mode == "watchdog":  # heartbeats, until the file arg names this worker's id
    s = listener()
    print("watchdog", os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID"), os.getpid(), flush=True)
    notify("READY=1")
    def beat():
        try:
            with open(arg) as f:
                if f.read().strip() == os.environ["MULTINODE_ID"]:
                    return
        except OSError:
            pass
        notify("WATCHDOG=1")
    serve(s, beat)
elif mode == "output":  # 300 lines of 5000 of one letter per worker, then one of 10000
    letter = "ABCDEFGHIJ"[int(os.environ["MULTINODE_SLOT"]) % 10]
    for i in range(300):
        sys.stdout.write(letter * 5000 + "\n")
    sys.stdout.write("Z" * 10000 + "\n")
    sys.stdout.flush()
    serve(listener())
elif mode == "flood":  # slot 1 writes without end; the others serve
    if os.environ["MULTINODE_SLOT"] == "1":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        line = ("x" * 999 + "\n") * 64
        while True:
            sys.stdout.write(line)
    serve(listener())
elif mode == "standby":  # says READY=1; as a standby, waits for SIGUSR2 without serving first
    s = listener()
    if os.environ.get("MULTINODE_STANDBY") == "1":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})
        print("standby", os.getpid(), "slot", os.environ.get("MULTINODE_SLOT"), flush=True)
        notify("READY=1")
        if signal.sigwait({signal.SIGUSR2, signal.SIGTERM}) == signal.SIGTERM:
            sys.exit(0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2, signal.SIGTERM})
        print("promoted", os.getpid(), flush=True)
    else:
        notify("READY=1")
    serve(s)
elif mode == "crash":
    sys.exit(3)
elif mode == "stubborn":  # deaf to SIGTERM, and so is a child of it in a session of its own
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        print("escaped", os.getpid(), flush=True)
        while True:
            time.sleep(1)
    time.sleep(0.2)
    print("stubborn", os.getpid(), flush=True)
    while True:
        time.sleep(1)
)PY";

class CliRun : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.file("worker.py")) << worker_script;
    port_ = free_port();
  }

  // multinode run --port P --control C OPTIONS -- python3 worker.py MODE ARGS...
  ChildProcess start(const std::vector<std::string>& options, const std::vector<std::string>& worker) {
    std::vector<std::string> argv{MULTINODE_COMMAND, "run",       "-p",        std::to_string(port_),
                                  "--host",          "127.0.0.1", "--control", control()};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.insert(argv.end(), {"--", python, dir_.file("worker.py")});
    argv.insert(argv.end(), worker.begin(), worker.end());
    return ChildProcess::start(argv);
  }

  std::string control() const { return dir_.file("control.sock"); }

  // One subcommand of the binary against this test's supervisor: exit status and stdout.
  std::pair<int, std::string> command(std::vector<std::string> args) {
    args.insert(args.begin(), MULTINODE_COMMAND);
    args.insert(args.end(), {"--control", control()});
    ChildProcess client = ChildProcess::start(args);
    const auto status = client.wait(15s);
    if (!status || !WIFEXITED(*status)) return {-1, client.output() + client.error_output()};
    return {WEXITSTATUS(*status), client.output() + client.error_output()};
  }

  json::object status() {
    const auto [code, text] = command({"status", "--json"});
    if (code != 0) return {};
    boost::system::error_code error;
    json::value v = json::parse(text, error);
    return !error && v.is_object() ? v.as_object() : json::object{};
  }

  // Waits until status shows `count` workers in `state`; their ids.
  std::set<std::int64_t> wait_for_workers(std::size_t count, const std::string& state,
                                          std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::set<std::int64_t> ids;
      const auto s = status();
      if (const auto* workers = s.if_contains("workers")) {
        for (const auto& w : workers->as_array()) {
          if (w.at("state").as_string() == state) ids.insert(w.at("id").to_number<std::int64_t>());
        }
      }
      if (ids.size() == count) return ids;
      std::this_thread::sleep_for(50ms);
    }
    return {};
  }

  // One request: the answering worker's pid, or -1.
  long ask() const {
    const int fd = connect_tcp(port_, 5s);
    if (fd < 0) return -1;
    write_all(fd, "hi\n");
    const auto line = read_line(fd, 5s);
    ::close(fd);
    return line ? std::atol(line->c_str()) : -1;
  }

  // The supervisor's exit status once it exited (bounded), else -1.
  static int exit_status(ChildProcess& supervisor, std::chrono::milliseconds timeout = 20s) {
    const auto status = supervisor.wait(timeout);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  }

  void rolling_restarts_lose_nothing(const std::vector<std::string>& options,
                                     const std::vector<std::string>& worker);

  TempDir dir_{"multinode-cli"};
  std::uint16_t port_ = 0;
};

TEST_F(CliRun, VersionAndHelp) {
  ChildProcess version = ChildProcess::start({MULTINODE_COMMAND, "--version"});
  ASSERT_EQ(exit_status(version, 10s), 0);
  EXPECT_EQ(version.output().rfind("multinode ", 0), 0U);
  ChildProcess help = ChildProcess::start({MULTINODE_COMMAND, "run", "--help"});
  ASSERT_EQ(exit_status(help, 10s), 0);
  EXPECT_NE(help.output().find("--heartbeat-timeout"), std::string::npos);
  ChildProcess wrong = ChildProcess::start({MULTINODE_COMMAND, "run", "--", "/no/such/program"});
  EXPECT_EQ(exit_status(wrong, 10s), 1);
  EXPECT_NE(wrong.error_output().find("cannot run /no/such/program"), std::string::npos);
}

TEST_F(CliRun, WorkersGetSystemdsProtocolsAndNothingElse) {
  ChildProcess supervisor = start(
      {"-n", "2"}, {"env", "-", "--fd", "{fd}", "--bind", "fd://{fd}", "{port}", "id={id}", "slot={slot}"});
  ASSERT_TRUE(supervisor.wait_for_log_count("is ready", 2, 20s)) << supervisor.error_output();
  const std::regex line_re(R"(\[worker (\d+) slot (\d+) pid (\d+)\] (\{.*\}))");
  std::map<long, long> pid_of_id;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (pid_of_id.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::istringstream out(supervisor.output());
    std::string line;
    pid_of_id.clear();
    while (std::getline(out, line)) {
      std::smatch m;
      if (!std::regex_match(line, m, line_re)) continue;
      const long id = std::stol(m[1]), slot = std::stol(m[2]), pid = std::stol(m[3]);
      const json::object r = json::parse(m[4].str()).as_object();
      const json::object& env = r.at("env").as_object();
      EXPECT_EQ(r.at("pid").to_number<long>(), pid);
      EXPECT_EQ(env.at("LISTEN_PID").as_string(), std::to_string(pid));  // its own: set after fork
      EXPECT_EQ(env.at("LISTEN_FDS").as_string(), "1");
      EXPECT_EQ(env.at("LISTEN_FDNAMES").as_string(), "multinode");
      EXPECT_EQ(env.at("MULTINODE_ID").as_string(), std::to_string(id));
      EXPECT_EQ(env.at("MULTINODE_SLOT").as_string(), std::to_string(slot));
      EXPECT_EQ(env.at("MULTINODE_NODES").as_string(), "2");
      EXPECT_EQ(env.at("NOTIFY_SOCKET").as_string().subview().substr(0, 1), "@");
      EXPECT_TRUE(env.at("WATCHDOG_USEC").is_null());  // no --heartbeat-timeout
      EXPECT_TRUE(env.at("MULTINODE_WORKER_ID").is_null());
      EXPECT_TRUE(env.at("MULTINODE_CONTROL_FD").is_null());
      const json::array expected_args{"--fd",
                                      "3",
                                      "--bind",
                                      "fd://3",
                                      std::to_string(port_),
                                      "id=" + std::to_string(id),
                                      "slot=" + std::to_string(slot)};
      EXPECT_EQ(r.at("args").as_array(), expected_args);
      // 0 (/dev/null), 1 and 2 (the pipes to the supervisor), 3 (the socket): nothing else.
      const json::array& fds = r.at("fds").as_array();
      ASSERT_EQ(fds.size(), 4U) << json::serialize(fds);
      EXPECT_EQ(fds[0].as_array()[1].as_string(), "/dev/null");
      EXPECT_EQ(fds[1].as_array()[1].as_string().subview().substr(0, 5), "pipe:");
      EXPECT_EQ(fds[2].as_array()[1].as_string().subview().substr(0, 5), "pipe:");
      EXPECT_EQ(fds[3].as_array()[0].to_number<int>(), 3);
      EXPECT_EQ(fds[3].as_array()[1].as_string().subview().substr(0, 7), "socket:");
      pid_of_id[id] = pid;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(pid_of_id.size(), 2U) << supervisor.output();
  // fd 3 is served: the answers come from those workers.
  std::set<long> pids;
  for (const auto& [id, pid] : pid_of_id) pids.insert(pid);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(pids.count(ask())) << i;

  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
  for (const long pid : pids) EXPECT_TRUE(wait_process_gone(static_cast<pid_t>(pid), 5s));
}

TEST_F(CliRun, SeveralListenSocketsNamedInListenFdnames) {
  const std::uint16_t second = free_port();
  ChildProcess supervisor = ChildProcess::start({MULTINODE_COMMAND, "run", "-n", "1", "--control", control(),
                                                 "--listen", "127.0.0.1:" + std::to_string(port_) + "=web",
                                                 "--listen", "127.0.0.1:" + std::to_string(second), "--",
                                                 python, dir_.file("worker.py"), "env", "-", "{port}"});
  ASSERT_TRUE(supervisor.wait_for_output("LISTEN_FDNAMES", 20s)) << supervisor.error_output();
  const std::string out = supervisor.output();
  const auto record = json::parse(out.substr(out.find('{'), out.find('\n') - out.find('{'))).as_object();
  EXPECT_EQ(record.at("env").at("LISTEN_FDS").as_string(), "2");
  EXPECT_EQ(record.at("env").at("LISTEN_FDNAMES").as_string(), "web:multinode");
  EXPECT_EQ(record.at("args").as_array(), json::array{std::to_string(port_)});  // {port}: the first socket's
  const auto& fds = record.at("fds").as_array();
  ASSERT_EQ(fds.size(), 5U) << json::serialize(fds);
  EXPECT_EQ(fds[4].as_array()[0].to_number<int>(), 4);
  EXPECT_EQ(fds[4].as_array()[1].as_string().subview().substr(0, 7), "socket:");
  EXPECT_GT(ask(), 0);                     // fd 3 (web) is served
  const int fd = connect_tcp(second, 5s);  // and the second is listening, from the supervisor's binding
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0);
}

TEST_F(CliRun, StatusScaleReloadAndStopThroughTheControlSocket) {
  ChildProcess supervisor = start({"-n", "2"}, {"env", "-"});
  const auto first = wait_for_workers(2, "ready");
  ASSERT_EQ(first.size(), 2U) << supervisor.error_output();
  const auto [table_status, table] = command({"status"});
  EXPECT_EQ(table_status, 0);
  EXPECT_NE(table.find("ready"), std::string::npos) << table;
  EXPECT_NE(command({"metrics"}).second.find("multinode_workers_ready 2"), std::string::npos);

  const auto [scale_status, scale_reply] = command({"scale", "3"});
  EXPECT_EQ(scale_status, 0) << scale_reply;
  EXPECT_EQ(wait_for_workers(3, "ready").size(), 3U);
  EXPECT_EQ(command({"scale", "1"}).first, 0);
  const auto one = wait_for_workers(1, "ready");
  ASSERT_EQ(one.size(), 1U);

  EXPECT_EQ(command({"reload"}).first, 0);
  // A new worker replaces the one there was.
  std::set<std::int64_t> after;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    after = wait_for_workers(1, "ready", 2s);
    if (after.size() == 1 && *after.begin() != *one.begin()) break;
  }
  ASSERT_EQ(after.size(), 1U);
  EXPECT_NE(*after.begin(), *one.begin());

  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
  EXPECT_NE(command({"status"}).first, 0);  // nobody there any more: an error, said
}

TEST_F(CliRun, NotifyReadinessWaitsForReadyEqualsOne) {
  const std::string trigger = dir_.file("go");
  ChildProcess supervisor = start({"-n", "2", "--ready", "notify"}, {"notify", trigger});
  ASSERT_EQ(wait_for_workers(2, "starting").size(), 2U) << supervisor.error_output();
  EXPECT_EQ(supervisor.error_output().find("is ready"), std::string::npos);
  std::ofstream(trigger) << "go";
  EXPECT_EQ(wait_for_workers(2, "ready").size(), 2U) << supervisor.error_output();
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0);
}

// Under a steady client, two rolling restarts lose no request: of notifying workers
// with --ready notify, and (the default, --ready started) of workers that know
// nothing of sd_notify, whose connections wait in the supervisor's socket while the
// replacement starts.
void CliRun::rolling_restarts_lose_nothing(const std::vector<std::string>& options,
                                           const std::vector<std::string>& worker) {
  ChildProcess supervisor = start(options, worker);
  ASSERT_EQ(wait_for_workers(2, "ready").size(), 2U) << supervisor.error_output();
  const std::string before = supervisor.error_output();
  std::atomic<bool> done{false};
  std::atomic<int> answered{0}, failed{0};
  std::thread client([&] {
    for (int i = 0; i < 100000 && !done; ++i) (ask() > 0 ? answered : failed)++;
  });
  std::this_thread::sleep_for(200ms);
  for (int round = 1; round <= 2; ++round) {
    EXPECT_EQ(command({"reload"}).first, 0);
    // Each reload replaces both: 2 more ready workers, and the old ones stopped.
    EXPECT_TRUE(supervisor.wait_for_log_count("is ready", static_cast<std::size_t>(2 + 2 * round), 30s));
    EXPECT_EQ(wait_for_workers(2, "ready").size(), 2U);
  }
  std::this_thread::sleep_for(200ms);
  done = true;
  client.join();
  EXPECT_EQ(failed.load(), 0) << supervisor.error_output();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0);
}

TEST_F(CliRun, RollingRestartOfNotifyingWorkersLosesNoRequest) {
  rolling_restarts_lose_nothing({"-n", "2", "--ready", "notify"}, {"notify"});
}

TEST_F(CliRun, RollingRestartByDefaultOfWorkersThatDoNotNotifyLosesNoRequest) {
  rolling_restarts_lose_nothing({"-n", "2"}, {"env", "-"});
}

TEST_F(CliRun, AWorkerThatStopsSendingWatchdogIsReplaced) {
  const std::string trigger = dir_.file("hang");
  ChildProcess supervisor = start({"-n", "1", "--heartbeat-timeout", "1500"}, {"watchdog", trigger});
  ASSERT_EQ(wait_for_workers(1, "ready").size(), 1U) << supervisor.error_output();
  ASSERT_TRUE(supervisor.wait_for_output("watchdog", 10s));
  std::smatch m;
  const std::string out = supervisor.output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(pid (\d+)\] watchdog (\d+) (\d+) (\d+))")));
  EXPECT_EQ(m[2].str(), "1500000");   // WATCHDOG_USEC
  EXPECT_EQ(m[3].str(), m[4].str());  // WATCHDOG_PID is the worker's own pid
  EXPECT_EQ(m[1].str(), m[4].str());
  std::this_thread::sleep_for(3000ms);  // beating (every 50 ms): alive for twice the timeout
  EXPECT_EQ(supervisor.error_output().find("is hung"), std::string::npos);
  std::ofstream(trigger) << "1";  // worker 1 stops beating (but still serves)
  ASSERT_TRUE(supervisor.wait_for_output("is hung", 20s, true)) << supervisor.error_output();
  // Worker 1 is killed, and a new worker fills its slot.
  std::set<std::int64_t> replaced;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && (replaced.size() != 1 || *replaced.begin() == 1)) {
    replaced = wait_for_workers(1, "ready", 1s);
  }
  ASSERT_EQ(replaced.size(), 1U);
  EXPECT_NE(*replaced.begin(), 1);
  EXPECT_TRUE(supervisor.wait_for_output("(it was hung)", 20s, true));
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0);
}

// --standby: a prepared process waits without serving; a killed worker's slot is
// filled by promoting it (SIGUSR2 for a program without the mesh's connection), a
// new standby takes its place, and a reload replaces the standby running the old program.
TEST_F(CliRun, AStandbyWaitsUnservingAndFillsADeadWorkersSlot) {
  ChildProcess supervisor = start({"-n", "2", "--standby", "1", "--ready", "notify"}, {"standby"});
  const auto standby_waiting = [this](std::int64_t other_than) -> std::pair<std::int64_t, std::int64_t> {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto s = status();
      if (const auto* list = s.if_contains("standby"); list != nullptr && list->as_array().size() == 1) {
        const auto& entry = list->as_array().front().as_object();
        const auto id = entry.at("id").to_number<std::int64_t>();
        if (entry.at("state").as_string() == "waiting" && id != other_than)
          return {id, entry.at("pid").to_number<std::int64_t>()};
      }
      std::this_thread::sleep_for(50ms);
    }
    return {0, 0};
  };
  const auto workers = wait_for_workers(2, "ready");
  ASSERT_EQ(workers.size(), 2U) << supervisor.error_output();
  const auto [standby_id, standby_pid] = standby_waiting(0);
  ASSERT_NE(standby_id, 0) << supervisor.error_output();
  EXPECT_EQ(workers.count(standby_id), 0U);
  ASSERT_TRUE(supervisor.wait_for_output("standby " + std::to_string(standby_pid) + " slot None", 10s))
      << supervisor.output();  // no MULTINODE_SLOT before its promotion
  EXPECT_NE(command({"metrics"}).second.find("multinode_standby_waiting 1"), std::string::npos);
  for (int i = 0; i < 20; ++i) EXPECT_NE(ask(), standby_pid) << "a standby served before its promotion";

  // kill -9 the worker of slot 1: the standby fills slot 1.
  std::int64_t victim = 0;
  const json::object before = status();
  for (const auto& w : before.at("workers").as_array()) {
    if (w.at("slot").to_number<int>() == 1) victim = w.at("pid").to_number<std::int64_t>();
  }
  ASSERT_GT(victim, 0);
  ::kill(static_cast<pid_t>(victim), SIGKILL);
  ASSERT_TRUE(supervisor.wait_for_output("promoted " + std::to_string(standby_pid), 20s))
      << supervisor.output();
  bool in_slot = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!in_slot && std::chrono::steady_clock::now() < deadline) {
    const json::object now = status();
    const auto* list = now.if_contains("workers");
    for (const auto& w : list != nullptr ? list->as_array() : json::array{}) {
      in_slot = in_slot || (w.at("id").to_number<std::int64_t>() == standby_id &&
                            w.at("slot").to_number<int>() == 1 && w.at("state").as_string() == "ready");
    }
    if (!in_slot) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(in_slot) << supervisor.error_output();
  EXPECT_NE(supervisor.error_output().find("fills slot 1 (SIGUSR2)"), std::string::npos)
      << supervisor.error_output();
  bool answered = false;
  for (int i = 0; i < 200 && !answered; ++i) answered = ask() == standby_pid;
  EXPECT_TRUE(answered) << "the promoted standby never answered";
  const auto [second_id, second_pid] = standby_waiting(standby_id);
  ASSERT_NE(second_id, 0) << supervisor.error_output();

  // A reload: both workers and the standby are new.
  EXPECT_EQ(command({"reload"}).first, 0);
  const auto [third_id, third_pid] = standby_waiting(second_id);
  EXPECT_NE(third_id, 0) << supervisor.error_output();
  EXPECT_GT(third_id, second_id);

  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
}

TEST_F(CliRun, StandbyIsRefusedWhereItCannotWork) {
  ChildProcess with_slot = start({"--standby", "1"}, {"env", "{slot}"});
  EXPECT_EQ(exit_status(with_slot, 10s), 1);
  EXPECT_NE(with_slot.error_output().find("{slot}"), std::string::npos) << with_slot.error_output();
  ChildProcess reuseport = start({"--standby", "1", "--balancing", "reuseport"}, {"env", "-"});
  EXPECT_EQ(exit_status(reuseport, 10s), 1);
  EXPECT_NE(reuseport.error_output().find("--balancing shared"), std::string::npos)
      << reuseport.error_output();
}

TEST_F(CliRun, OutputComesInWholePrefixedLinesCutPastTheBound) {
  ChildProcess supervisor = start({"-n", "2", "--max-line", "4096"}, {"output"});
  // Per worker: 300 lines of 5000 (two pieces each) and 10000 (three): 603 lines.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::vector<std::string> lines;
  while (std::chrono::steady_clock::now() < deadline) {
    lines.clear();
    std::istringstream out(supervisor.output());
    for (std::string line; std::getline(out, line);) lines.push_back(line);
    if (lines.size() >= 2 * 603) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(lines.size(), 2U * 603) << supervisor.error_output();
  const std::regex line_re(R"(\[worker (\d+) slot (\d+) pid (\d+)( cut)?\] ([A-Z]+))");
  std::map<std::string, std::vector<std::pair<bool, std::size_t>>> pieces;  // per pid: (cut, length)
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, line_re)) << line.substr(0, 100);
    const std::string body = m[5];
    const char letter = "ABCDEFGHIJ"[std::stoi(m[2]) % 10];
    // One worker's letter only (or its final Z line): no line merged with another's.
    EXPECT_TRUE(body.find_first_not_of(body[0]) == std::string::npos &&
                (body[0] == letter || body[0] == 'Z'));
    pieces[m[3]].emplace_back(m[4].matched, body.size());
  }
  ASSERT_EQ(pieces.size(), 2U);
  for (const auto& [pid, list] : pieces) {
    ASSERT_EQ(list.size(), 603U);
    for (std::size_t i = 0; i < 600; i += 2) {
      EXPECT_EQ(list[i], std::make_pair(true, std::size_t{4096}));
      EXPECT_EQ(list[i + 1], std::make_pair(false, std::size_t{5000 - 4096}));
    }
    EXPECT_EQ(list[600], std::make_pair(true, std::size_t{4096}));
    EXPECT_EQ(list[601], std::make_pair(true, std::size_t{4096}));
    EXPECT_EQ(list[602], std::make_pair(false, std::size_t{10000 - 8192}));
  }
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0);
}

TEST_F(CliRun, AFloodOnABlockedStdoutStallsNothingAndIsCounted) {
  // The supervisor's stdout is a FIFO nobody reads (the test holds it open).
  const std::string fifo = dir_.file("out.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int hold = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(hold, 0);
  std::vector<std::string> argv{"/bin/sh",
                                "-c",
                                "exec \"$0\" \"$@\" > '" + fifo + "'",
                                MULTINODE_COMMAND,
                                "run",
                                "-p",
                                std::to_string(port_),
                                "--host",
                                "127.0.0.1",
                                "--control",
                                control(),
                                "-n",
                                "2",
                                "--",
                                python,
                                dir_.file("worker.py"),
                                "flood"};
  ChildProcess supervisor = ChildProcess::start(argv);
  ASSERT_EQ(wait_for_workers(2, "ready").size(), 2U) << supervisor.error_output();
  ASSERT_TRUE(supervisor.wait_for_output("line(s) of worker output dropped", 20s, true));
  // Still supervising and still served by the other worker.
  for (int i = 0; i < 5; ++i) EXPECT_GT(ask(), 0);
  EXPECT_EQ(wait_for_workers(2, "ready").size(), 2U);
  EXPECT_EQ(command({"stop"}).first, 0);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
  ::close(hold);
}

TEST_F(CliRun, SignalsScaleAndReloadAndMaxRssRecycles) {
  ChildProcess supervisor = start({"-n", "1"}, {"env", "-"});
  ASSERT_EQ(wait_for_workers(1, "ready").size(), 1U) << supervisor.error_output();
  supervisor.signal(SIGTTIN);
  EXPECT_EQ(wait_for_workers(2, "ready").size(), 2U);
  supervisor.signal(SIGTTOU);
  EXPECT_EQ(wait_for_workers(1, "ready").size(), 1U);
  supervisor.signal(SIGHUP);
  EXPECT_TRUE(supervisor.wait_for_output("rolling restart of every worker (SIGHUP)", 10s, true));
  supervisor.signal(SIGTERM);
  EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();

  // Python's resident memory is above 1 MiB: every worker is recycled, through the rolling path.
  ChildProcess recycling = start({"-n", "1", "--max-rss", "1"}, {"env", "-"});
  EXPECT_TRUE(recycling.wait_for_output("above max_rss 1 MiB", 20s, true)) << recycling.error_output();
  EXPECT_TRUE(recycling.wait_for_output("recycled: worker", 20s, true)) << recycling.error_output();
  recycling.signal(SIGTERM);
  EXPECT_EQ(exit_status(recycling), 0) << recycling.error_output();
}

TEST_F(CliRun, ACrashLoopBacksOffAndGivesUp) {
  ChildProcess supervisor = start({"-n", "1"}, {"crash"});
  EXPECT_EQ(exit_status(supervisor, 30s), 1) << supervisor.error_output();
  const std::string log = supervisor.error_output();
  EXPECT_NE(log.find("crash loop"), std::string::npos) << log;
  EXPECT_NE(log.find("restarting slot 1 in 200 ms"), std::string::npos) << log;  // doubling delays
  EXPECT_NE(log.find("restarting slot 1 in 400 ms"), std::string::npos) << log;
}

// A worker deaf to SIGTERM, with a child in a session of its own (setsid) deaf to it too.
TEST_F(CliRun, StopEscalatesToSigkillAndASupervisorKilledTakesItsWorkers) {
  for (const bool kill_supervisor : {false, true}) {
    ChildProcess supervisor = start({"-n", "1", "--stop-timeout", "500"}, {"stubborn"});
    ASSERT_TRUE(supervisor.wait_for_output("stubborn", 20s)) << supervisor.error_output();
    std::smatch m;
    const std::string out = supervisor.output();
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(stubborn (\d+))")));
    const pid_t worker = static_cast<pid_t>(std::stol(m[1]));
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(escaped (\d+))")));
    const pid_t escaped = static_cast<pid_t>(std::stol(m[1]));
    ASSERT_TRUE(process_alive(worker));
    if (kill_supervisor) {
      supervisor.signal(SIGKILL);
      supervisor.wait(10s);
      EXPECT_TRUE(wait_process_gone(worker, 10s));  // PR_SET_PDEATHSIG
      // Its own child, in its own session, outlives a supervisor killed by SIGKILL
      // (docs/cli.md says so: only a cgroup would catch it): the test cleans up.
      ::kill(escaped, SIGKILL);
    } else {
      EXPECT_EQ(command({"stop"}).first, 0);
      EXPECT_EQ(exit_status(supervisor), 0) << supervisor.error_output();
      EXPECT_NE(supervisor.error_output().find("stop_timeout (500 ms) reached"), std::string::npos);
      EXPECT_TRUE(wait_process_gone(worker, 10s));
      EXPECT_TRUE(wait_process_gone(escaped, 10s));  // an orphan of the worker's: the subreaper's to kill
    }
  }
}

}  // namespace
}  // namespace multinode::test
