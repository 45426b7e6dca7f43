// What the operator interface makes of untrusted bytes: command lines, the
// metrics request, and metrics_listen's HOST:PORT. Every verdict is the same
// however the bytes were cut.
#include "control/command.hpp"

#include <gtest/gtest.h>

#include <string>

namespace multinode::detail {
namespace {

using Outcome = CommandParse::Outcome;

Command command_of(std::string_view text) {
  const CommandParse parse = parse_command(text);
  EXPECT_EQ(parse.outcome, Outcome::command) << text << " -> " << parse.error;
  return parse.command;
}

std::string error_of(std::string_view text, bool at_end = false) {
  const CommandParse parse = parse_command(text, at_end);
  EXPECT_EQ(parse.outcome, Outcome::error) << text;
  return parse.error;
}

TEST(ControlCommand, TheFiveCommands) {
  EXPECT_EQ(command_of("status\n").kind, CommandKind::status);
  EXPECT_EQ(command_of("metrics\r\n").kind, CommandKind::metrics);
  EXPECT_EQ(command_of("  reload \t\n").kind, CommandKind::reload);
  EXPECT_EQ(command_of("stop\nstatus\n").kind, CommandKind::stop);  // the first line only
  const Command scale = command_of("scale   4\n");
  EXPECT_EQ(scale.kind, CommandKind::scale);
  EXPECT_EQ(scale.workers, 4u);
  EXPECT_EQ(command_of("scale 0\n").workers, 0u);
  EXPECT_EQ(command_of("scale 1024\n").workers, max_scale_workers);
}

TEST(ControlCommand, WaitsForTheNewlineUnlessTheClientClosed) {
  EXPECT_EQ(parse_command("").outcome, Outcome::incomplete);
  EXPECT_EQ(parse_command("stat").outcome, Outcome::incomplete);
  EXPECT_EQ(parse_command("status").outcome, Outcome::incomplete);
  const CommandParse at_end = parse_command("status", true);
  ASSERT_EQ(at_end.outcome, Outcome::command);
  EXPECT_EQ(at_end.command.kind, CommandKind::status);
}

TEST(ControlCommand, UnknownCommandsAreNamedOnOneLine) {
  const std::string unknown = error_of("frobnicate now\n");
  EXPECT_EQ(unknown.rfind("error: unknown command \"frobnicate now\"", 0), 0u) << unknown;
  // Bytes that would break the line or the quotes are escaped.
  const std::string odd = error_of(std::string("a\"b\\c\x01\xff\r\n", 10));
  EXPECT_EQ(odd.rfind(R"(error: unknown command "a\"b\\c\x01\xff")", 0), 0u) << odd;
  EXPECT_EQ(odd.find('\n'), std::string::npos);
  EXPECT_EQ(error_of("STATUS\n").rfind("error: unknown command \"STATUS\"", 0), 0u);
  EXPECT_EQ(error_of("\n").rfind("error: empty command line", 0), 0u);
}

TEST(ControlCommand, ArgumentsAreChecked) {
  EXPECT_EQ(error_of("status --json\n"), "error: \"status\" takes no argument");
  for (const char* bad : {"scale\n", "scale x\n", "scale -1\n", "scale 1025\n", "scale 99999999999\n",
                          "scale 2 3\n", "scale +2\n"}) {
    EXPECT_EQ(error_of(bad).rfind("error: scale takes one number of workers, 0 to 1024", 0), 0u) << bad;
  }
}

TEST(ControlCommand, ALineLongerThanTheBoundIsCutOff) {
  const std::string long_line(max_command_line, 'a');
  EXPECT_EQ(error_of(long_line), "error: command line longer than 256 bytes");
  EXPECT_EQ(error_of(std::string(max_command_line, ' ') + "\n"), "error: command line longer than 256 bytes");
  // The longest line that fits: 255 bytes and its newline.
  EXPECT_EQ(command_of(std::string(max_command_line - 8, ' ') + "status\n").kind, CommandKind::status);
  EXPECT_EQ(parse_command(std::string(max_command_line - 1, ' ')).outcome, Outcome::incomplete);
}

TEST(ControlCommand, EveryPrefixOfALineIsIncompleteAndTheVerdictDoesNotDependOnCuts) {
  for (const std::string line : {"status\n", "scale 12\r\n", "nope\n"}) {
    for (std::size_t cut = 0; cut < line.size(); ++cut) {
      EXPECT_EQ(parse_command(line.substr(0, cut)).outcome, Outcome::incomplete) << line << " cut " << cut;
    }
  }
}

TEST(MetricsRequest, GetAndHeadOfMetrics) {
  EXPECT_EQ(parse_metrics_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), MetricsRequest::get);
  EXPECT_EQ(parse_metrics_request("GET /metrics?name[]=a HTTP/1.0\r\n\r\n"), MetricsRequest::get);
  EXPECT_EQ(parse_metrics_request("HEAD /metrics HTTP/1.1\r\nAccept: text/plain;version=0.0.4\r\n\r\n"),
            MetricsRequest::head);
  EXPECT_EQ(parse_metrics_request("GET /metrics HTTP/1.1\r\nX-Empty:\r\nUser-Agent: a b\t\r\n\r\nbody"),
            MetricsRequest::get);
}

TEST(MetricsRequest, OtherPathsMethodsAndMalformedRequests) {
  EXPECT_EQ(parse_metrics_request("GET / HTTP/1.1\r\n\r\n"), MetricsRequest::not_found);
  EXPECT_EQ(parse_metrics_request("GET /metricsx HTTP/1.1\r\n\r\n"), MetricsRequest::not_found);
  EXPECT_EQ(parse_metrics_request("POST /metrics HTTP/1.1\r\n\r\n"), MetricsRequest::method_not_allowed);
  for (const char* bad :
       {"GET /metrics HTTP/1.1\n\n", "GET  /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET /metrics HTTP/1.1\r\nA: \x01\r\n\r\n", "\r\n",
        "GET /metrics\r\n\r\n"}) {
    EXPECT_EQ(parse_metrics_request(bad), MetricsRequest::bad_request) << bad;
  }
  // Wrong at once: answered without waiting for the rest.
  EXPECT_EQ(parse_metrics_request("GET /metrics HTTP/9\r\n"), MetricsRequest::bad_request);
}

TEST(MetricsRequest, IncompleteUntilTheBlankLineAndBoundedInSize) {
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t cut = 0; cut < request.size(); ++cut) {
    EXPECT_EQ(parse_metrics_request(request.substr(0, cut)), MetricsRequest::incomplete) << cut;
  }
  std::string big = "GET /metrics HTTP/1.1\r\n";
  while (big.size() < max_metrics_request) big += "X-Filler: " + std::string(100, 'f') + "\r\n";
  EXPECT_EQ(parse_metrics_request(big), MetricsRequest::too_large);
  EXPECT_EQ(parse_metrics_request(std::string(max_metrics_request + 1, 'G')), MetricsRequest::too_large);
}

TEST(MetricsListen, HostAndPort) {
  auto a = split_host_port("127.0.0.1:9100");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9100);
  auto b = split_host_port("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  auto c = split_host_port(":9100");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "");
  EXPECT_EQ(split_host_port("localhost:65535")->port, 65535);
  for (const char* bad : {"", "9100", "host:", "host:65536", "::1:9100", "[]:80", "h:-1", "h:9x"}) {
    EXPECT_FALSE(split_host_port(bad)) << bad;
  }
}

}  // namespace
}  // namespace multinode::detail
