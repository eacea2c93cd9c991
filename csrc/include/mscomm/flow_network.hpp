// A directed flow network with int64 capacities that stays alive across many max-flow calls:
// arcs are added once and their capacities updated in place, so a caller asking thousands of
// max-flow questions on a slowly changing graph (ForestColl's flow tests and tree packing)
// pays no per-call construction. Max-flow is Dinic's algorithm with an optional limit (stop as
// soon as the flow reaches it), which is all a threshold test needs.
#pragma once
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace mscomm::graph {

class FlowNetwork {
 public:
  static constexpr int64_t kInfinity = std::numeric_limits<int64_t>::max() / 4;

  explicit FlowNetwork(int num_nodes = 0);

  int num_nodes() const { return static_cast<int>(first_.size()) - 1 + pending_nodes_; }
  int num_arcs() const { return static_cast<int>(cap_.size() / 2); }

  // A new node; returns its index.
  int add_node();
  // A new arc u -> v with capacity cap (>= 0); returns its id. Parallel arcs are allowed.
  int add_arc(int u, int v, int64_t cap);
  // Change the capacity of an arc in place.
  void set_capacity(int arc, int64_t cap);
  void add_capacity(int arc, int64_t delta);
  int64_t capacity(int arc) const { return cap_[2 * arc]; }

  // Value of a maximum s-t flow, or of a flow of value >= limit as soon as one is found.
  int64_t max_flow(int s, int t, int64_t limit = kInfinity);
  // After max_flow: 1 for nodes reachable from s in the residual network (a min cut's source
  // side when the flow was maximum), else 0.
  std::vector<uint8_t> source_side() const;
  // After max_flow: flow on every arc, by arc id.
  std::vector<int64_t> arc_flows() const;
  // For each t in sinks (in order): max_flow(s, t, need); returns the first t whose flow falls
  // below need and that flow, or (-1, need) when every sink gets need.
  std::pair<int, int64_t> first_short_sink(int s, const std::vector<int>& sinks, int64_t need);

 private:
  void build();
  void restore();
  bool bfs(int s, int t);
  int64_t dfs(int v, int t, int64_t pushed);

  // Arc 2i is arc i forward, 2i+1 its residual reverse.
  std::vector<int> from_, to_;
  std::vector<int64_t> cap_, res_;
  // Adjacency in CSR form, rebuilt when arcs or nodes were added.
  std::vector<int> first_{0}, adj_, level_, next_, queue_, touched_;
  int pending_nodes_ = 0;
  bool dirty_ = true;
  int last_source_ = -1;
};

}  // namespace mscomm::graph
