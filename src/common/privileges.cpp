// Resolving Options::user / Options::group and dropping root for them (privileges.hpp).
#include "common/privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <string>
#include <system_error>
#include <vector>

namespace multinode::detail {
namespace {

// getpwnam_r / getgrnam_r want a caller's buffer; ERANGE asks for a larger one.
template <typename Entry, typename Lookup>
bool look_up(const std::string& name, Entry* entry, std::vector<char>& buffer, Lookup lookup,
             const char* what) {
  buffer.resize(1024);
  for (;;) {
    Entry* result = nullptr;
    const int error = lookup(name.c_str(), entry, buffer.data(), buffer.size(), &result);
    if (error == ERANGE && buffer.size() < (std::size_t{1} << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    // 0 with no result (or ENOENT, ESRCH, EBADF, EPERM by some NSS modules): no such entry.
    if (result != nullptr) return true;
    if (error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM) return false;
    throw std::system_error(error, std::generic_category(),
                            std::string("cannot look up the ") + what + " '" + name + "'");
  }
}

[[noreturn]] void fail(const std::string& step, int error) {
  throw std::system_error(error, std::generic_category(),
                          step + " failed while dropping privileges; nothing was started");
}

}  // namespace

std::optional<Identity> resolve_identity(const std::string& user, const std::string& group) {
  if (user.empty() && group.empty()) return std::nullopt;
  if (user.empty()) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "Options::group ('" + group +
                                "') is set without Options::user: set --user too (the group "
                                "alone would leave the process root)");
  }
  Identity identity;
  identity.user = user;
  std::vector<char> buffer;
  struct passwd pw {};
  if (!look_up(user, &pw, buffer, ::getpwnam_r, "user")) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "no user named '" + user +
                                "' (Options::user, --user): create it (useradd --system " + user +
                                ") or name an existing one");
  }
  identity.uid = pw.pw_uid;
  identity.gid = pw.pw_gid;  // the user's primary group unless a group is named
  identity.group = std::to_string(pw.pw_gid);
  if (!group.empty()) {
    struct group gr {};
    if (!look_up(group, &gr, buffer, ::getgrnam_r, "group")) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "no group named '" + group +
                                  "' (Options::group, --group): create it (groupadd --system " + group +
                                  "), name an existing one, or leave it empty for the user's primary group");
    }
    identity.gid = gr.gr_gid;
    identity.group = group;
  }
  return identity;
}

Credentials current_credentials() {
  Credentials creds;
  ::getresuid(&creds.ruid, &creds.euid, &creds.suid);
  ::getresgid(&creds.rgid, &creds.egid, &creds.sgid);
  const int count = ::getgroups(0, nullptr);
  if (count > 0) {
    creds.groups.resize(static_cast<std::size_t>(count));
    const int got = ::getgroups(count, creds.groups.data());
    creds.groups.resize(got < 0 ? 0 : static_cast<std::size_t>(got));
  }
  return creds;
}

std::string credentials_mismatch(const Identity& target, const Credentials& creds) {
  std::string wrong;
  const auto add = [&wrong](const std::string& what) {
    if (!wrong.empty()) wrong += ", ";
    wrong += what;
  };
  if (creds.ruid != target.uid || creds.euid != target.uid || creds.suid != target.uid) {
    add("uids " + std::to_string(creds.ruid) + "/" + std::to_string(creds.euid) + "/" +
        std::to_string(creds.suid) + " instead of " + std::to_string(target.uid));
  }
  if (creds.rgid != target.gid || creds.egid != target.gid || creds.sgid != target.gid) {
    add("gids " + std::to_string(creds.rgid) + "/" + std::to_string(creds.egid) + "/" +
        std::to_string(creds.sgid) + " instead of " + std::to_string(target.gid));
  }
  // Linux may report the egid among the groups or not: {} and {gid} are both exact.
  const bool groups_exact =
      creds.groups.empty() || (creds.groups.size() == 1 && creds.groups[0] == target.gid);
  if (!groups_exact) {
    std::string list;
    for (const gid_t g : creds.groups) {
      if (!list.empty()) list += ',';
      list += std::to_string(g);
    }
    add("supplementary groups {" + list + "} instead of {" + std::to_string(target.gid) + "}");
  }
  if (creds.regained_root) add("setuid(0) succeeded: root can be regained");
  return wrong;
}

void hand_over_log_file(const std::string& path, const Identity& target) {
  if (path.empty()) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("stat of the log file " + path, errno);
  if (st.st_uid == target.uid && st.st_gid == target.gid) return;
  if (::chown(path.c_str(), target.uid, target.gid) != 0) {
    fail("chown of the log file " + path + " to " + target.user + ":" + target.group, errno);
  }
}

void drop_privileges(const Identity& target, const std::string& log_file) {
  const Credentials before = current_credentials();
  const bool already = before.ruid == target.uid && before.euid == target.uid && before.suid == target.uid &&
                       before.rgid == target.gid && before.egid == target.gid && before.sgid == target.gid;
  if (already) return;  // --user names the current user (or a worker of a dropped master)
  if (before.euid == 0) hand_over_log_file(log_file, target);
  if (before.euid != 0) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                            "Options::user is '" + target.user + "' but this process runs as uid " +
                                std::to_string(before.euid) +
                                ", which may not change its ids: run as root, or drop --user");
  }
  // The kernel clears a parent-death signal when the ids change: armed again after.
  int parent_death_signal = 0;
  ::prctl(PR_GET_PDEATHSIG, &parent_death_signal);
  // Groups first, then the gid: both need root, which setresuid gives up.
  if (::setgroups(1, &target.gid) != 0) fail("setgroups({" + std::to_string(target.gid) + "})", errno);
  if (::setresgid(target.gid, target.gid, target.gid) != 0) {
    fail("setresgid(" + std::to_string(target.gid) + ") for group " + target.group, errno);
  }
  if (::setresuid(target.uid, target.uid, target.uid) != 0) {
    fail("setresuid(" + std::to_string(target.uid) + ") for user " + target.user, errno);
  }
  if (parent_death_signal != 0) ::prctl(PR_SET_PDEATHSIG, parent_death_signal);
  Credentials after = current_credentials();
  // Irreversible: root must be out of reach (unless root was asked for).
  after.regained_root = target.uid != 0 && ::setuid(0) == 0;
  const std::string wrong = credentials_mismatch(target, after);
  if (!wrong.empty()) {
    fail("the check after becoming " + target.user + ":" + target.group + " (" + wrong + ")", EPERM);
  }
  if (log_file.empty()) return;
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "user " + target.user + " cannot open the log file " + log_file +
                                " (workers open it by path after the drop): let that user traverse "
                                "its directory (e.g. chmod o+x), or log elsewhere");
  }
  ::close(fd);
}

}  // namespace multinode::detail
