// The intrusive list the HTTP server and the mesh keep their live objects on.
#include "common/intrusive_list.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace {

struct Item {
  explicit Item(int v) : value(v) {}
  int value;
  multinode::detail::ListHook<Item> hook;
};
using List = multinode::detail::IntrusiveList<Item, &Item::hook>;

std::vector<int> values(List& list) {
  std::vector<int> out;
  list.for_each([&](Item& item) { out.push_back(item.value); });
  return out;
}

TEST(IntrusiveList, PushFrontKeepsNewestFirst) {
  Item a(1), b(2), c(3);
  List list;
  EXPECT_TRUE(list.empty());
  list.push_front(a);
  list.push_front(b);
  list.push_front(c);
  EXPECT_EQ(values(list), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.front(), &c);
  EXPECT_TRUE(b.hook.linked());
}

TEST(IntrusiveList, EraseFromAnyPosition) {
  Item a(1), b(2), c(3), d(4);
  List list;
  for (Item* item : {&a, &b, &c, &d}) list.push_front(*item);
  list.erase(b);  // middle
  EXPECT_EQ(values(list), (std::vector<int>{4, 3, 1}));
  list.erase(d);  // first
  EXPECT_EQ(values(list), (std::vector<int>{3, 1}));
  list.erase(a);  // last
  EXPECT_EQ(values(list), (std::vector<int>{3}));
  EXPECT_FALSE(a.hook.linked());
  list.erase(a);  // not linked: nothing happens
  EXPECT_EQ(list.size(), 1u);
  list.erase(c);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.front(), nullptr);
  list.push_front(b);  // an erased item can be linked again
  EXPECT_EQ(values(list), (std::vector<int>{2}));
}

TEST(IntrusiveList, ForEachMayDestroyTheCurrentItem) {
  List list;
  std::vector<Item*> items;
  for (int i = 0; i < 5; ++i) {
    items.push_back(new Item(i));
    list.push_front(*items.back());
  }
  int visited = 0;
  list.for_each([&](Item& item) {
    ++visited;
    list.erase(item);
    delete &item;
  });
  EXPECT_EQ(visited, 5);
  EXPECT_TRUE(list.empty());
}

}  // namespace
