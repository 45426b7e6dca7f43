// The Date header line, formatted at most once a second (RFC 9110 5.6.7 IMF-fixdate).
#pragma once

#include <ctime>
#include <string_view>

namespace multinode::http::detail {

class DateCache {
 public:
  // "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" for the current second.
  std::string_view line() noexcept {
    const std::time_t now = std::time(nullptr);
    if (now != second_) format(now);
    return {line_, sizeof line_};
  }

 private:
  void format(std::time_t now) noexcept {
    // By hand rather than strftime: %a and %b follow the process's locale.
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&now, &tm);
    char* p = line_ + 6;  // after "Date: "
    auto put3 = [&](const char* s) {
      for (int i = 0; i < 3; ++i) *p++ = s[i];
    };
    auto put2 = [&](int v) {
      *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
    };
    put3(days[tm.tm_wday % 7]);
    *p++ = ',';
    *p++ = ' ';
    put2(tm.tm_mday);
    *p++ = ' ';
    put3(months[tm.tm_mon % 12]);
    *p++ = ' ';
    const int year = tm.tm_year + 1900;
    put2(year / 100);
    put2(year % 100);
    *p++ = ' ';
    put2(tm.tm_hour);
    *p++ = ':';
    put2(tm.tm_min);
    *p++ = ':';
    put2(tm.tm_sec);
    second_ = now;
  }

  std::time_t second_ = -1;
  char line_[37] = {'D', 'a', 't', 'e', ':', ' ', 'S', 'u', 'n', ',',  ' ', '0', '1',
                    ' ', 'J', 'a', 'n', ' ', '1', '9', '7', '0', ' ',  '0', '0', ':',
                    '0', '0', ':', '0', '0', ' ', 'G', 'M', 'T', '\r', '\n'};
};

}  // namespace multinode::http::detail
