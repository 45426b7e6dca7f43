// The original multi-node README's inter-process example: every process keeps a framed
// stream to every other one. GET /say?text=hi sends the text to every other process;
// GET / shows what this process has heard. The master logs how many peers it has.
//   node examples/run/mesh.js
//   multinode run -n 4 -p 8080 -- node examples/run/mesh.js
var multinode = require("../../clients/node");
var heard = [];
var server = require("http").createServer(function(request, response){
  var url = new URL(request.url, "http://localhost");
  if (url.pathname === "/say") {
    notifyOtherProcesses({from: nodes.id, text: url.searchParams.get("text") || ""});
    response.end("process " + nodes.id + " told " + allStreams.length + " other process(es)\n");
  } else {
    response.end("process " + nodes.id + " heard:\n" + heard.join("\n") + "\n");
  }
});
var nodes = multinode.listen({port: 8080, nodes: 4}, server);

var allStreams = [];
nodes.addListener("node", function(stream){
  stream = multinode.frameStream(stream);
  allStreams.push(stream);
  stream.addListener("message", function(data){
    heard.push(data.from + ": " + data.text);
    if (heard.length > 100) heard.shift();  // the last 100 only
  });
  stream.addListener("close", function(){
    allStreams.splice(allStreams.indexOf(stream), 1);
  });
});

function notifyOtherProcesses(message){
  allStreams.forEach(function(stream){
    stream.send(message);
  });
}

// One process only: the master (the role moves on if it dies).
setInterval(function(){
  if (nodes.isMaster) console.log("master " + nodes.id + ": " + allStreams.length + " peer stream(s)");
}, 10000).unref();
