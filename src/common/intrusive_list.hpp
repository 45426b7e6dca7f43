// A doubly-linked list threaded through the objects it holds: no allocation to
// link or unlink, O(1) removal from the middle. The HTTP server's connections and
// the mesh's streams are each on one such list, so that a server (or a stream
// service) can reach every live object when the io_context goes away.
//
// Single-threaded, like everything on a process's io_context. The list never
// owns what it links: an object unlinks itself before it is destroyed.
#pragma once

#include <cstddef>

namespace multinode::detail {

template <typename T, auto Hook>
class IntrusiveList;

// The links an object carries, as a member; only the list reads or writes them.
template <typename T>
class ListHook {
 public:
  ListHook() = default;
  ListHook(const ListHook&) = delete;
  ListHook& operator=(const ListHook&) = delete;

  bool linked() const noexcept { return linked_; }

 private:
  template <typename, auto>
  friend class IntrusiveList;
  T* previous_ = nullptr;
  T* next_ = nullptr;
  bool linked_ = false;
};

// Hook is the member that holds the links: IntrusiveList<Connection, &Connection::list_hook_>.
template <typename T, auto Hook>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const noexcept { return first_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  T* front() const noexcept { return first_; }

  // Links `item` first. It must not be on a list.
  void push_front(T& item) noexcept {
    ListHook<T>& hook = item.*Hook;
    hook.previous_ = nullptr;
    hook.next_ = first_;
    if (first_ != nullptr) (first_->*Hook).previous_ = &item;
    first_ = &item;
    hook.linked_ = true;
    ++size_;
  }

  // Unlinks `item`; does nothing when it is not linked.
  void erase(T& item) noexcept {
    ListHook<T>& hook = item.*Hook;
    if (!hook.linked_) return;
    if (hook.previous_ != nullptr)
      (hook.previous_->*Hook).next_ = hook.next_;
    else
      first_ = hook.next_;
    if (hook.next_ != nullptr) (hook.next_->*Hook).previous_ = hook.previous_;
    hook.previous_ = hook.next_ = nullptr;
    hook.linked_ = false;
    --size_;
  }

  // Calls f(T&) for every item, newest first. f may unlink (or destroy) the item it
  // is given, but no other.
  template <typename F>
  void for_each(F&& f) {
    for (T* item = first_; item != nullptr;) {
      T* next = (item->*Hook).next_;
      f(*item);
      item = next;
    }
  }

 private:
  T* first_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace multinode::detail
