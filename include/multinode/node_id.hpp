// NodeId: which process of the mesh. The master is 0; workers count up from 1 and
// an id is never reused, so a replacement worker has a new one.
#pragma once

#include <cstdint>

namespace multinode {

using NodeId = std::uint32_t;

}  // namespace multinode
