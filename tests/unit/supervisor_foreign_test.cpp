// The pure parts of foreign workers: NOTIFY_SOCKET datagrams, the placeholders of
// the program's arguments, the PATH lookup, and the cutting of output into lines
// (at every split point of the input), and the relay's line format.
#include "supervisor/foreign.hpp"
#include "supervisor/output_relay.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace multinode::detail {
namespace {

TEST(ParseNotify, ReadsTheAssignmentsItKnowsAndIgnoresTheRest) {
  const auto m = parse_notify("STATUS=warming up\nREADY=1\nFDSTORE=1\nWATCHDOG=1");
  EXPECT_TRUE(m.ready);
  EXPECT_TRUE(m.watchdog);
  EXPECT_FALSE(m.stopping);
  ASSERT_TRUE(m.status);
  EXPECT_EQ(*m.status, "warming up");
  EXPECT_TRUE(parse_notify("STOPPING=1\n").stopping);
  EXPECT_TRUE(parse_notify("RELOADING=1").reloading);
}

TEST(ParseNotify, AValueOtherThanOneIsNotReady) {
  EXPECT_FALSE(parse_notify("READY=0").ready);
  EXPECT_FALSE(parse_notify("READY=1x").ready);
  EXPECT_FALSE(parse_notify(" READY=1").ready);
  EXPECT_FALSE(parse_notify("").ready);
  EXPECT_FALSE(parse_notify("WATCHDOG=trigger").watchdog);
}

TEST(SubstitutePlaceholders, ReplacesEachNameWhereverItIs) {
  const auto out = substitute_placeholders(
      {"--bind", "fd://{fd}", "{port}{id}-{slot}", "{other}", "{", "{fd"}, {"3", "8080", "7", "2"});
  EXPECT_EQ(out, (std::vector<std::string>{"--bind", "fd://3", "80807-2", "{other}", "{", "{fd"}));
}

TEST(FindProgram, LooksInPathOnlyForANameWithoutASlash) {
  EXPECT_EQ(find_program("sh", "/nonexistent:/bin"), "/bin/sh");
  EXPECT_EQ(find_program("/bin/sh", "/nonexistent"), "/bin/sh");
  EXPECT_FALSE(find_program("no-such-program-here", "/bin:/usr/bin"));
  EXPECT_FALSE(find_program("/etc/passwd", nullptr));  // not executable
  EXPECT_FALSE(find_program("/bin", nullptr));         // a directory
  EXPECT_FALSE(find_program("", "/bin"));
}

std::vector<LineSplitter::Line> split(std::size_t max_line, const std::vector<std::string>& chunks,
                                      bool finish) {
  LineSplitter splitter(max_line);
  std::vector<LineSplitter::Line> lines;
  for (const auto& chunk : chunks) splitter.feed(chunk, lines);
  if (finish) {
    if (auto last = splitter.finish()) lines.push_back(*last);
  }
  return lines;
}

TEST(LineSplitter, SameLinesWhereverTheInputIsCut) {
  const std::string input = "first\n\nthird line is longer\nxy\nunterm";
  const auto whole = split(8, {input}, true);
  // "third line is longer" (20 bytes) comes out as 8 + 8 + 4, the first two marked.
  ASSERT_EQ(whole.size(), 7U);
  EXPECT_EQ(whole[0].text, "first");
  EXPECT_EQ(whole[1].text, "");
  EXPECT_EQ(whole[2].text, "third li");
  EXPECT_TRUE(whole[2].continues);
  EXPECT_EQ(whole[3].text, "ne is lo");
  EXPECT_TRUE(whole[3].continues);
  EXPECT_EQ(whole[4].text, "nger");
  EXPECT_FALSE(whole[4].continues);
  EXPECT_EQ(whole[5].text, "xy");
  EXPECT_EQ(whole[6].text, "unterm");
  for (std::size_t a = 0; a <= input.size(); ++a) {
    for (std::size_t b = a; b <= input.size(); ++b) {
      const auto cut = split(8, {input.substr(0, a), input.substr(a, b - a), input.substr(b)}, true);
      ASSERT_EQ(cut.size(), whole.size()) << a << " " << b;
      for (std::size_t i = 0; i < cut.size(); ++i) {
        EXPECT_EQ(cut[i].text, whole[i].text);
        EXPECT_EQ(cut[i].continues, whole[i].continues);
      }
    }
  }
}

TEST(LineSplitter, ALineOfExactlyTheBoundIsWhole) {
  const auto lines = split(4, {"abcd\nabcde\n"}, false);
  ASSERT_EQ(lines.size(), 3U);
  EXPECT_EQ(lines[0].text, "abcd");
  EXPECT_FALSE(lines[0].continues);
  EXPECT_EQ(lines[1].text, "abcd");
  EXPECT_TRUE(lines[1].continues);
  EXPECT_EQ(lines[2].text, "e");
  EXPECT_FALSE(split(4, {"partial"}, false).size() == 2);  // "part" cut, "ial" waits for its end
}

TEST(OutputLine, TextIsPrefixedAndJsonIsOneRecord) {
  const WorkerInfo worker{3, 1, 4250};
  EXPECT_EQ(format_output_line(worker, false, {"hello", false}, false), "[worker 3 slot 1 pid 4250] hello\n");
  EXPECT_EQ(format_output_line(worker, true, {"part", true}, false), "[worker 3 slot 1 pid 4250 cut] part\n");
  const std::string json = format_output_line(worker, true, {"say \"hi\"\n", true}, true);
  EXPECT_EQ(json.back(), '\n');
  EXPECT_EQ(json.find('\n'), json.size() - 1);  // one line: the newline inside is escaped
  EXPECT_NE(json.find("\"id\":3,\"slot\":1,\"pid\":4250"), std::string::npos);
  EXPECT_NE(json.find("\"stream\":\"stderr\",\"continues\":true}"), std::string::npos);
  EXPECT_NE(json.find("\"message\":\"say \\\"hi\\\"\\n\""), std::string::npos);
}

}  // namespace
}  // namespace multinode::detail
