// Options::user / Options::group: names resolved (or refused with what to do), the
// check of credentials after the drop, and the drop itself in a forked child
// (root only): every id changed, root out of reach, a second drop a no-op.
#include "common/privileges.hpp"

#include <gtest/gtest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <functional>
#include <string>
#include <system_error>

namespace multinode::detail {
namespace {

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::system_error& error) {
    return error.what();
  }
  return "";
}

// Runs body in a forked child; its exit status (0 when body returned true).
int in_child(const std::function<bool()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body() ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Identity nobody() {
  const auto identity = resolve_identity("nobody", "nogroup");
  if (!identity) throw std::runtime_error("nobody:nogroup did not resolve");
  return *identity;
}

TEST(PrivilegeDrop, NothingAskedResolvesToNothing) {
  EXPECT_FALSE(resolve_identity("", "").has_value());
}

TEST(PrivilegeDrop, UserAndGroupResolveToTheirIds) {
  const auto root = resolve_identity("root", "");
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);  // the primary group when none is named
  const Identity n = nobody();
  EXPECT_EQ(n.uid, ::getpwnam("nobody")->pw_uid);
  EXPECT_EQ(n.gid, 65534u);
  EXPECT_EQ(n.user, "nobody");
  EXPECT_EQ(n.group, "nogroup");
  const auto root_in_nogroup = resolve_identity("root", "nogroup");
  ASSERT_TRUE(root_in_nogroup.has_value());
  EXPECT_EQ(root_in_nogroup->uid, 0u);
  EXPECT_EQ(root_in_nogroup->gid, 65534u);
}

TEST(PrivilegeDrop, UnknownNamesSayWhatToDo) {
  const std::string user = error_of([] { resolve_identity("no-such-user-xyz", ""); });
  EXPECT_NE(user.find("no user named 'no-such-user-xyz'"), std::string::npos) << user;
  EXPECT_NE(user.find("useradd"), std::string::npos) << user;
  const std::string group = error_of([] { resolve_identity("nobody", "no-such-group-xyz"); });
  EXPECT_NE(group.find("no group named 'no-such-group-xyz'"), std::string::npos) << group;
  EXPECT_NE(group.find("groupadd"), std::string::npos) << group;
  const std::string alone = error_of([] { resolve_identity("", "nogroup"); });
  EXPECT_NE(alone.find("without Options::user"), std::string::npos) << alone;
}

TEST(PrivilegeDrop, MismatchNamesEveryWrongId) {
  const Identity target{.uid = 65534, .gid = 65534, .user = "nobody", .group = "nogroup"};
  Credentials exact{65534, 65534, 65534, 65534, 65534, 65534, {65534}, false};
  EXPECT_EQ(credentials_mismatch(target, exact), "");
  exact.groups.clear();  // the egid alone, not listed: still exact
  EXPECT_EQ(credentials_mismatch(target, exact), "");

  Credentials saved_root = exact;
  saved_root.suid = 0;
  EXPECT_NE(credentials_mismatch(target, saved_root).find("uids 65534/65534/0"), std::string::npos);
  Credentials gid_left = exact;
  gid_left.egid = 0;
  EXPECT_NE(credentials_mismatch(target, gid_left).find("gids 65534/0/65534"), std::string::npos);
  Credentials extra_groups = exact;
  extra_groups.groups = {65534, 0};
  EXPECT_NE(credentials_mismatch(target, extra_groups).find("supplementary groups {65534,0}"),
            std::string::npos);
  Credentials regained = exact;
  regained.regained_root = true;
  EXPECT_NE(credentials_mismatch(target, regained).find("root can be regained"), std::string::npos);
}

TEST(PrivilegeDrop, TheCurrentIdentityIsANoOp) {
  const Credentials before = current_credentials();
  const Identity self{.uid = before.ruid, .gid = before.rgid, .user = "self", .group = "self"};
  if (before.euid != before.ruid || before.egid != before.rgid) GTEST_SKIP() << "mixed ids";
  EXPECT_NO_THROW(drop_privileges(self));
  const Credentials after = current_credentials();
  EXPECT_EQ(after.groups, before.groups);  // untouched: nothing was asked
}

TEST(PrivilegeDrop, RootDropsForGoodAndOnlyOnce) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const Identity target = nobody();
  EXPECT_EQ(in_child([&] {
              drop_privileges(target);
              Credentials creds = current_credentials();
              creds.regained_root = ::setuid(0) == 0 || ::seteuid(0) == 0 || ::setgid(0) == 0;
              if (!credentials_mismatch(target, creds).empty()) return false;
              drop_privileges(target);  // a worker of a dropped master: nothing to do
              return current_credentials().euid == target.uid;
            }),
            0);
}

TEST(PrivilegeDrop, AnotherUserNeedsRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const Identity target = nobody();
  EXPECT_EQ(in_child([&] {
              drop_privileges(target);
              const std::string error = error_of([] { drop_privileges(*resolve_identity("root", "")); });
              return error.find("run as root, or drop --user") != std::string::npos &&
                     current_credentials().euid == target.uid;
            }),
            0);
}

TEST(PrivilegeDrop, TheLogFileIsHandedOver) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  char path[] = "/tmp/multinode-privileges-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const Identity target = nobody();
  hand_over_log_file(path, target);
  struct stat st {};
  ASSERT_EQ(::stat(path, &st), 0);
  EXPECT_EQ(st.st_uid, target.uid);
  EXPECT_EQ(st.st_gid, target.gid);
  hand_over_log_file("", target);  // stderr: nothing to hand over
  ::unlink(path);
  const std::string missing = error_of([&] { hand_over_log_file(path, target); });
  EXPECT_NE(missing.find(path), std::string::npos) << missing;
}

}  // namespace
}  // namespace multinode::detail
