// The worker environment: what the master encodes is what a worker and the
// listening-socket code decode, and what is malformed is refused.
#include "common/environment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail::environment {
namespace {

// An envp (null-terminated array of "NAME=value") over entries that outlive it.
struct Envp {
  explicit Envp(std::vector<std::string> entries) : entries_(std::move(entries)) {
    for (auto& e : entries_) pointers_.push_back(e.c_str());
    pointers_.push_back(nullptr);
  }
  const char* const* get() const { return pointers_.data(); }

 private:
  std::vector<std::string> entries_;
  std::vector<const char*> pointers_;
};

// entries as the child sees them: LISTEN_PID's value written in by write_listen_pid().
std::vector<std::string> as_child(WorkerEntries encoded, pid_t pid) {
  std::string& last = encoded.entries.back();
  write_listen_pid(last.data() + WorkerEntries::listen_pid_value_offset, pid);
  last.resize(std::char_traits<char>::length(last.c_str()));
  return encoded.entries;
}

TEST(Environment, EveryNameIsListedOnce) {
  EXPECT_EQ(all_variables.size(), listen_variables.size() + worker_variables.size());
  for (const char* name : listen_variables) EXPECT_EQ(std::string(name).rfind("LISTEN_", 0), 0u) << name;
  for (const char* name : worker_variables) EXPECT_EQ(std::string(name).rfind("MULTINODE_", 0), 0u) << name;
  for (std::size_t i = 0; i < all_variables.size(); ++i) {
    for (std::size_t j = i + 1; j < all_variables.size(); ++j)
      EXPECT_STRNE(all_variables[i], all_variables[j]);
  }
}

TEST(Environment, AWorkerDecodesWhatTheMasterEncodes) {
  const WorkerStart start{7, 3, 4242, {"multinode", "multinode"}};
  const Envp envp(as_child(encode_worker(start), 4250));
  ASSERT_TRUE(names_a_worker(envp.get()));
  const auto identity = decode_worker(envp.get());
  ASSERT_TRUE(identity.has_value());
  EXPECT_EQ(identity->id, 7u);
  EXPECT_EQ(identity->slot, 3u);
  EXPECT_EQ(identity->control_fd, 5);  // right after the two listening sockets at 3 and 4
  EXPECT_EQ(identity->master_pid, 4242);

  const auto listen = decode_listen_fds(envp.get());
  ASSERT_TRUE(listen.has_value());
  EXPECT_EQ(listen->pid, 4250);
  EXPECT_EQ(listen->count, 2);
  EXPECT_EQ(listen->names, (std::vector<std::string>{"multinode", "multinode"}));
}

TEST(Environment, TheWireFormIsTheDocumentedOne) {
  const auto encoded = encode_worker({12, 1, 99, {"a", "b", "c"}});
  std::vector<std::string> expected = {"MULTINODE_WORKER_ID=12", "MULTINODE_SLOT=1",
                                       "MULTINODE_CONTROL_FD=6", "MULTINODE_MASTER_PID=99",
                                       "LISTEN_FDS=3",           "LISTEN_FDNAMES=a:b:c"};
  ASSERT_EQ(encoded.entries.size(), expected.size() + 1);
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(encoded.entries[i], expected[i]);
  // LISTEN_PID last, with room for the child's pid filled in after fork().
  const std::string& last = encoded.entries.back();
  EXPECT_EQ(last.substr(0, WorkerEntries::listen_pid_value_offset), "LISTEN_PID=");
  EXPECT_GE(last.size() - WorkerEntries::listen_pid_value_offset, 11u);  // "2147483647" and its NUL
  for (const auto& entry : encoded.entries) EXPECT_TRUE(is_own_entry(entry)) << entry;
}

TEST(Environment, WriteListenPidWritesDecimalDigitsAndANul) {
  char value[23];
  std::fill(std::begin(value), std::end(value), 'x');
  write_listen_pid(value, 2147483647);
  EXPECT_STREQ(value, "2147483647");
  write_listen_pid(value, 1);
  EXPECT_STREQ(value, "1");
  write_listen_pid(value, 40960);
  EXPECT_STREQ(value, "40960");
}

TEST(Environment, OwnEntriesAreRecognisedByTheirWholeName) {
  EXPECT_TRUE(is_own_entry("LISTEN_FDS=1"));
  EXPECT_TRUE(is_own_entry("MULTINODE_MASTER_PID="));
  EXPECT_FALSE(is_own_entry("LISTEN_FDS"));                 // no value: not an entry
  EXPECT_FALSE(is_own_entry("LISTEN_FDSX=1"));              // another variable
  EXPECT_FALSE(is_own_entry("MULTINODE_LOG_LEVEL=debug"));  // the user's, inherited
  EXPECT_FALSE(is_own_entry("PATH=/bin"));
}

TEST(Environment, FindMatchesTheWholeName) {
  const Envp envp({"LISTEN_FDSX=9", "LISTEN_FDS=2", "EMPTY="});
  EXPECT_STREQ(find(envp.get(), "LISTEN_FDS"), "2");
  EXPECT_STREQ(find(envp.get(), "EMPTY"), "");
  EXPECT_EQ(find(envp.get(), "LISTEN"), nullptr);
  EXPECT_EQ(find(envp.get(), "MISSING"), nullptr);
  EXPECT_EQ(find(nullptr, "LISTEN_FDS"), nullptr);
}

TEST(Environment, NumbersAreNonNegativeDecimalsAndNothingElse) {
  EXPECT_EQ(decode_number("0"), 0);
  EXPECT_EQ(decode_number("123"), 123);
  EXPECT_FALSE(decode_number(nullptr));
  EXPECT_FALSE(decode_number(""));
  EXPECT_FALSE(decode_number("-1"));
  EXPECT_FALSE(decode_number("+1"));
  EXPECT_FALSE(decode_number(" 1"));
  EXPECT_FALSE(decode_number("1 "));
  EXPECT_FALSE(decode_number("12a"));
  EXPECT_FALSE(decode_number("0x10"));
  EXPECT_FALSE(decode_number("99999999999999999999999"));  // out of range
}

TEST(Environment, AWorkerIdentityNeedsIdSlotAndControlFd) {
  EXPECT_FALSE(names_a_worker(Envp({"PATH=/bin"}).get()));
  EXPECT_FALSE(decode_worker(Envp({"PATH=/bin"}).get()));
  const Envp no_control({"MULTINODE_WORKER_ID=1", "MULTINODE_SLOT=1"});
  EXPECT_TRUE(names_a_worker(no_control.get()));
  EXPECT_FALSE(decode_worker(no_control.get()));
  EXPECT_FALSE(
      decode_worker(Envp({"MULTINODE_WORKER_ID=1", "MULTINODE_SLOT=x", "MULTINODE_CONTROL_FD=4"}).get()));
  EXPECT_FALSE(
      decode_worker(Envp({"MULTINODE_WORKER_ID=", "MULTINODE_SLOT=1", "MULTINODE_CONTROL_FD=4"}).get()));
  EXPECT_FALSE(decode_worker(
      Envp({"MULTINODE_WORKER_ID=4294967296", "MULTINODE_SLOT=1", "MULTINODE_CONTROL_FD=4"}).get()));
  // The master's pid is for information: a worker without it is still a worker.
  const auto identity = decode_worker(
      Envp({"MULTINODE_WORKER_ID=4294967295", "MULTINODE_SLOT=2", "MULTINODE_CONTROL_FD=4"}).get());
  ASSERT_TRUE(identity.has_value());
  EXPECT_EQ(identity->id, 4294967295u);
  EXPECT_EQ(identity->master_pid, 0);
}

TEST(Environment, ListenFdsNeedAPidAndACountFromOneTo1024) {
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_FDS=1"}).get()));
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_PID=10"}).get()));
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_PID=10", "LISTEN_FDS=0"}).get()));
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_PID=10", "LISTEN_FDS=1025"}).get()));
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_PID=10", "LISTEN_FDS=two"}).get()));
  EXPECT_FALSE(decode_listen_fds(Envp({"LISTEN_PID=self", "LISTEN_FDS=1"}).get()));
  const auto most = decode_listen_fds(Envp({"LISTEN_PID=10", "LISTEN_FDS=1024"}).get());
  ASSERT_TRUE(most.has_value());
  EXPECT_EQ(most->count, 1024);
  EXPECT_TRUE(most->names.empty());  // no LISTEN_FDNAMES: no names
}

TEST(Environment, ListenFdNamesSplitAtEveryColon) {
  const auto names = [](const char* value) {
    return decode_listen_fds(
               Envp({"LISTEN_PID=10", "LISTEN_FDS=3", std::string("LISTEN_FDNAMES=") + value}).get())
        ->names;
  };
  EXPECT_EQ(names("web"), (std::vector<std::string>{"web"}));
  EXPECT_EQ(names("web:admin"), (std::vector<std::string>{"web", "admin"}));
  EXPECT_EQ(names("web::"), (std::vector<std::string>{"web", "", ""}));
  EXPECT_EQ(names(""), (std::vector<std::string>{""}));
}

TEST(Environment, UnsetRemovesTheGivenVariablesOnly) {
  ::setenv("MULTINODE_WORKER_ID", "1", 1);
  ::setenv("LISTEN_FDS", "1", 1);
  unset(worker_variables);
  EXPECT_EQ(std::getenv("MULTINODE_WORKER_ID"), nullptr);
  EXPECT_STREQ(std::getenv("LISTEN_FDS"), "1");
  unset(listen_variables);
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
}

// The names `multinode run` gives its workers (docs/cli.md): the documented ones, each once.
TEST(Environment, TheRunWorkerNamesAreTheDocumentedOnes) {
  const std::vector<std::string> expected = {
      "MULTINODE_ID",     "MULTINODE_SLOT",          "MULTINODE_NODES",
      "MULTINODE_MESH",   "MULTINODE_MASTER",        "MULTINODE_STANDBY",
      "MULTINODE_BRIDGE", "MULTINODE_BRIDGE_PREFIX", "MULTINODE_BRIDGE_HOST_ID"};
  ASSERT_EQ(run_variables.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(run_variables[i], expected[i]);
  // Only MULTINODE_SLOT is shared with the library's own workers.
  for (const char* name : run_variables) {
    const bool shared = std::string(name) == slot;
    EXPECT_EQ(std::count_if(all_variables.begin(), all_variables.end(),
                            [name](const char* other) { return std::string(name) == other; }),
              shared ? 1 : 0)
        << name;
  }
}

TEST(Environment, ARunWorkerIsNamedByMultinodeIdWithoutWorkerId) {
  EXPECT_TRUE(names_a_run_worker(Envp({"MULTINODE_ID=3", "MULTINODE_SLOT=1"}).get()));
  EXPECT_FALSE(names_a_run_worker(Envp({"MULTINODE_SLOT=1"}).get()));
  // A library worker (whose environment a test or a shell may have added MULTINODE_ID to).
  EXPECT_FALSE(names_a_run_worker(Envp({"MULTINODE_ID=3", "MULTINODE_WORKER_ID=3"}).get()));
  EXPECT_FALSE(names_a_worker(Envp({"MULTINODE_ID=3", "MULTINODE_SLOT=1"}).get()));
}

TEST(Environment, ARunWorkerDecodesEveryVariable) {
  const auto all = decode_run_worker(
      Envp({"MULTINODE_ID=7", "MULTINODE_SLOT=2", "MULTINODE_NODES=3",
            "MULTINODE_MESH=/run/user/1000/multinode-mesh.x", "MULTINODE_MASTER=1",
            "MULTINODE_BRIDGE=redis://127.0.0.1:6379",
            "MULTINODE_BRIDGE_PREFIX=app:", "MULTINODE_BRIDGE_HOST_ID=18446744073709551615"})
          .get());
  ASSERT_TRUE(all);
  EXPECT_EQ(all->id, 7u);
  EXPECT_EQ(all->slot, 2u);
  EXPECT_EQ(all->nodes, 3u);
  EXPECT_EQ(all->mesh, "/run/user/1000/multinode-mesh.x");
  EXPECT_TRUE(all->master);
  EXPECT_EQ(all->bridge, "redis://127.0.0.1:6379");
  EXPECT_EQ(all->bridge_prefix, std::optional<std::string>("app:"));
  EXPECT_EQ(all->host_id, 18446744073709551615u);

  const auto least = decode_run_worker(Envp({"MULTINODE_ID=1", "MULTINODE_SLOT=1"}).get());
  ASSERT_TRUE(least);
  EXPECT_EQ(least->nodes, 0u);
  EXPECT_TRUE(least->mesh.empty());
  EXPECT_FALSE(least->master);
  EXPECT_TRUE(least->bridge.empty());
  EXPECT_FALSE(least->bridge_prefix);
  EXPECT_EQ(least->host_id, 0u);
}

TEST(Environment, ARunWorkerNeedsANumericIdAndSlot) {
  EXPECT_FALSE(decode_run_worker(Envp({"MULTINODE_ID=1"}).get()));
  EXPECT_FALSE(decode_run_worker(Envp({"MULTINODE_SLOT=1"}).get()));
  EXPECT_FALSE(decode_run_worker(Envp({"MULTINODE_ID=x", "MULTINODE_SLOT=1"}).get()));
  EXPECT_FALSE(decode_run_worker(Envp({"MULTINODE_ID=1", "MULTINODE_SLOT=-1"}).get()));
  EXPECT_FALSE(decode_run_worker(Envp({"MULTINODE_ID=4294967296", "MULTINODE_SLOT=1"}).get()));
  // What is only informative is dropped when malformed, not fatal.
  const auto odd =
      decode_run_worker(Envp({"MULTINODE_ID=1", "MULTINODE_SLOT=1", "MULTINODE_NODES=many",
                              "MULTINODE_MASTER=yes", "MULTINODE_BRIDGE_HOST_ID=18446744073709551616"})
                            .get());
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->nodes, 0u);
  EXPECT_FALSE(odd->master);  // only "1" gives the role
  EXPECT_EQ(odd->host_id, 0u);
  const auto junk =
      decode_run_worker(Envp({"MULTINODE_ID=1", "MULTINODE_SLOT=1", "MULTINODE_BRIDGE_HOST_ID=12ab"}).get());
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->host_id, 0u);
}

}  // namespace
}  // namespace multinode::detail::environment
