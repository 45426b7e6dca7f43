// The `multinode` command line: run's options land in the library's Options, the
// control commands get their line and path, usage errors exit with 2 and say why,
// --help and --version exit with 0.
#include "cli/command_line.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace multinode::cli {
namespace {

Invocation parse(std::vector<std::string> args) {
  args.insert(args.begin(), "multinode");
  return parse_command_line(args);
}

TEST(CommandLine, RunTakesTheLibrarysOptions) {
  const auto i = parse({"run",
                        "-n",
                        "3",
                        "-p",
                        "9000",
                        "--host",
                        "127.0.0.1",
                        "--balancing",
                        "reuseport",
                        "--no-restart",
                        "--stop-timeout",
                        "1500",
                        "--heartbeat-timeout",
                        "2000",
                        "--max-rss",
                        "300",
                        "--control",
                        "/tmp/x.sock",
                        "--metrics-listen",
                        "127.0.0.1:9100",
                        "--log-format",
                        "json",
                        "--listen",
                        ":80=http",
                        "--listen",
                        "[::1]:81",
                        "--ready",
                        "notify",
                        "--",
                        "python3",
                        "app.py",
                        "--fd",
                        "{fd}",
                        "-v"});
  ASSERT_EQ(i.action, Action::run) << i.message;
  const Options& o = i.options;
  EXPECT_EQ(o.nodes, 3U);
  EXPECT_EQ(o.port, 9000);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.balancing, Balancing::reuseport);
  EXPECT_FALSE(o.restart_children);
  EXPECT_EQ(o.stop_timeout.count(), 1500);
  EXPECT_EQ(o.heartbeat_timeout.count(), 2000);
  EXPECT_EQ(o.max_rss, 300U);
  EXPECT_EQ(o.control_socket, "/tmp/x.sock");
  EXPECT_EQ(o.metrics_listen, "127.0.0.1:9100");
  EXPECT_EQ(o.log_format, LogFormat::json);
  EXPECT_EQ(o.worker_readiness, WorkerReadiness::notify);
  EXPECT_FALSE(o.master_listen);
  EXPECT_EQ(o.listen, (std::vector<std::string>{":80=http", "[::1]:81"}));
  EXPECT_EQ(o.worker_command, (std::vector<std::string>{"python3", "app.py", "--fd", "{fd}", "-v"}));
}

TEST(CommandLine, RunDefaults) {
  const auto i = parse({"run", "--", "./server"});
  ASSERT_EQ(i.action, Action::run) << i.message;
  EXPECT_GE(i.options.nodes, 1U);
  EXPECT_EQ(i.options.port, 8080);
  EXPECT_EQ(i.options.worker_readiness, WorkerReadiness::started);
  EXPECT_EQ(i.options.heartbeat_timeout.count(), 0);  // a program that sends no WATCHDOG=1 is not hung
  EXPECT_TRUE(i.options.restart_children);
  EXPECT_EQ(i.options.control_socket, default_control_path());
}

TEST(CommandLine, ControlCommands) {
  auto i = parse({"status", "--json", "--control", "/tmp/s"});
  EXPECT_EQ(i.action, Action::control);
  EXPECT_EQ(i.control_line, "status");
  EXPECT_TRUE(i.status_json);
  EXPECT_EQ(i.control_path, "/tmp/s");
  EXPECT_EQ(parse({"scale", "4"}).control_line, "scale 4");
  EXPECT_EQ(parse({"reload"}).control_line, "reload");
  EXPECT_EQ(parse({"metrics"}).control_line, "metrics");
  EXPECT_EQ(parse({"stop"}).control_line, "stop");
  EXPECT_EQ(parse({"stop"}).control_path, default_control_path());
}

TEST(CommandLine, UsageErrorsExitWithTwoAndSayWhy) {
  for (const auto& args : std::vector<std::vector<std::string>>{{},
                                                                {"bogus"},
                                                                {"run"},
                                                                {"run", "--ready", "maybe", "--", "x"},
                                                                {"run", "-n", "0", "--", "x"},
                                                                {"scale"},
                                                                {"scale", "many"},
                                                                {"run", "--log-format", "xml", "--", "x"}}) {
    const auto i = parse(args);
    EXPECT_EQ(i.action, Action::exit);
    EXPECT_EQ(i.exit_status, 2);
    EXPECT_FALSE(i.message.empty());
  }
  const auto refused = parse({"run", "--max-requests", "100", "--", "x"});
  EXPECT_EQ(refused.exit_status, 2);
  EXPECT_NE(refused.message.find("--max-rss"), std::string::npos);  // says what to use instead
}

TEST(CommandLine, HelpAndVersionExitWithZero) {
  const auto help = parse({"--help"});
  EXPECT_EQ(help.action, Action::exit);
  EXPECT_EQ(help.exit_status, 0);
  EXPECT_NE(help.message.find("status"), std::string::npos);
  const auto run_help = parse({"run", "--help"});
  EXPECT_EQ(run_help.exit_status, 0);
  EXPECT_NE(run_help.message.find("--ready"), std::string::npos);
  const auto version = parse({"--version"});
  EXPECT_EQ(version.exit_status, 0);
  EXPECT_EQ(version.message.rfind("multinode ", 0), 0U);
}

TEST(StatusTable, OneLinePerWorker) {
  const std::string json =
      R"({"master":{"pid":10,"uptime_s":1.5,"generation":2},"workers":[)"
      R"({"id":1,"slot":1,"pid":11,"state":"ready","uptime_s":1.2,"restarts":0,"rss_bytes":10485760,"heartbeat_age_ms":null,"connections":null,"requests":null},)"
      R"({"id":3,"slot":2,"pid":12,"state":"starting","uptime_s":0.1,"restarts":1,"rss_bytes":null,"heartbeat_age_ms":5,"connections":null,"requests":null}]})";
  const std::string table = status_table(json);
  EXPECT_NE(table.find("supervisor pid 10"), std::string::npos);
  EXPECT_NE(table.find("ready"), std::string::npos);
  EXPECT_NE(table.find("starting"), std::string::npos);
  EXPECT_NE(table.find("10.0"), std::string::npos);
  EXPECT_EQ(status_table("not json"), "not json");
}

TEST(StatusTable, StandbysHaveRowsOfTheirOwnWithoutASlot) {
  const std::string json =
      R"({"master":{"pid":10,"uptime_s":1.5,"generation":0},"workers":[],)"
      R"("standby":[{"id":4,"pid":14,"state":"waiting","uptime_s":2.0,"rss_bytes":2097152}]})";
  const std::string table = status_table(json);
  EXPECT_NE(table.find("4     -     14        sb:waiting"), std::string::npos) << table;
  EXPECT_NE(table.find("2.0"), std::string::npos) << table;
}

}  // namespace
}  // namespace multinode::cli
