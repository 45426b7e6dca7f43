// The original multi-node README's HTTP example; only the require path differs.
//   node examples/run/http.js                              (starts multinode run itself)
//   multinode run -n 4 -p 8080 -- node examples/run/http.js
// Under `multinode run` the command's -n and -p decide; listen()'s options are for
// the first form.
var server = require("http").createServer(function(request, response){
  response.writeHead(200, {"Content-Type": "text/plain"});
  response.end("Hello from process " + nodes.id + (nodes.isMaster ? " (the master)" : "") + "\n");
});
var nodes = require("../../clients/node").listen({
  port: 8080,
  nodes: 4
}, server);
