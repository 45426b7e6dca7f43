// A built-in HTTP/1.1 server with a Node-like handler:
//
//   multinode::http::Server server([](multinode::http::Request& req, multinode::http::Response& res) {
//     res.set("Content-Type", "text/plain");
//     res.end("hello\n");
//   });
//   auto nodes = multinode::listen({.port = 8080, .nodes = 4}, server);
//   return nodes.run();
//
// Keep-alive, pipelining (responses in order, gathered into one write per batch),
// HTTP/1.0, chunked request and response bodies with trailers, HEAD,
// `Expect: 100-continue`, a strict parser that refuses every request-smuggling
// form, limits and timeouts on everything a client controls. docs/http.md has
// the whole story, every option and every status the server answers by itself.
#pragma once

#include <multinode/http/error.hpp>
#include <multinode/http/options.hpp>
#include <multinode/http/request.hpp>
#include <multinode/http/response.hpp>
#include <multinode/http/server.hpp>
#include <multinode/http/takeover.hpp>
