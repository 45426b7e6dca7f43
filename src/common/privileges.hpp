// Dropping root for a named user and group (Options::user, Options::group): the
// master binds its sockets and opens its log file as root, then becomes the user
// before it spawns any worker, so every worker starts as that user.
#pragma once

#include <sys/types.h>
#include <optional>
#include <string>
#include <vector>

namespace multinode::detail {

// The identity to become: ids and the names they came from (for messages).
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;
  std::string group;
};

// Looks up user (getpwnam_r) and group (getgrnam_r); an empty group means the
// user's primary group. nullopt when both are empty (no change asked for).
// std::system_error naming what does not exist and what to do; also when a group
// is given without a user.
std::optional<Identity> resolve_identity(const std::string& user, const std::string& group);

// What a process's credentials are, as the kernel reports them.
struct Credentials {
  uid_t ruid = 0, euid = 0, suid = 0;
  gid_t rgid = 0, egid = 0, sgid = 0;
  std::vector<gid_t> groups;   // supplementary groups
  bool regained_root = false;  // setuid(0) succeeded after the drop
};
Credentials current_credentials();

// Empty when creds are exactly target (every uid, every gid, the supplementary
// groups exactly {gid}, root not regainable), else what differs.
std::string credentials_mismatch(const Identity& target, const Credentials& creds);

// Gives the log file (when there is one, and it is not the user's already) to
// target, so that workers started after the drop can open it and the master can
// reopen it on SIGUSR1. std::system_error when chown fails.
void hand_over_log_file(const std::string& path, const Identity& target);

// Becomes target for good: setgroups({gid}), setresgid, setresuid, in that order,
// then checks that root cannot be regained and that every id is what was asked.
// Does nothing when the process already runs as target's uid and gid (idempotent,
// and --user set to the current user). std::system_error naming the failed step;
// "run as root, or drop --user" when this process may not change its ids.
// With a log_file, it is handed over first (hand_over_log_file) and, once the
// process runs as target, opened again by path the way a worker opens it: a
// directory the user cannot traverse fails here, not in every worker.
void drop_privileges(const Identity& target, const std::string& log_file = {});

}  // namespace multinode::detail
