// Everything multinode offers: #include <multinode/multinode.hpp>
#pragma once

#include <multinode/bridge.hpp>
#include <multinode/control.hpp>
#include <multinode/error.hpp>
#include <multinode/frame.hpp>
#include <multinode/http.hpp>
#include <multinode/node_id.hpp>
#include <multinode/nodes.hpp>
#include <multinode/options.hpp>
#include <multinode/server.hpp>
#include <multinode/stream.hpp>
#include <multinode/tcp.hpp>
#include <multinode/websocket.hpp>
#include <multinode/workers.hpp>
