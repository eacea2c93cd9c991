#include "mscomm/flow_network.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mscomm::graph {

FlowNetwork::FlowNetwork(int num_nodes) {
  if (num_nodes < 0) throw std::invalid_argument("FlowNetwork: negative node count");
  pending_nodes_ = num_nodes;
}

int FlowNetwork::add_node() {
  const int id = num_nodes();
  ++pending_nodes_;
  dirty_ = true;
  return id;
}

int FlowNetwork::add_arc(int u, int v, int64_t cap) {
  const int n = num_nodes();
  if (u < 0 || v < 0 || u >= n || v >= n)
    throw std::out_of_range("FlowNetwork::add_arc: node " + std::to_string(u < 0 || u >= n ? u : v) +
                            " out of range (" + std::to_string(n) + " nodes)");
  if (cap < 0) throw std::invalid_argument("FlowNetwork::add_arc: negative capacity");
  from_.push_back(u); to_.push_back(v); cap_.push_back(cap);
  from_.push_back(v); to_.push_back(u); cap_.push_back(0);
  dirty_ = true;
  return num_arcs() - 1;
}

void FlowNetwork::set_capacity(int arc, int64_t cap) {
  if (arc < 0 || arc >= num_arcs()) throw std::out_of_range("FlowNetwork: arc id out of range");
  if (cap < 0) throw std::invalid_argument("FlowNetwork::set_capacity: negative capacity");
  restore();
  cap_[2 * arc] = cap;
  if (res_.size() == cap_.size()) res_[2 * arc] = cap;
}

void FlowNetwork::add_capacity(int arc, int64_t delta) {
  if (arc < 0 || arc >= num_arcs()) throw std::out_of_range("FlowNetwork: arc id out of range");
  if (cap_[2 * arc] + delta < 0) throw std::invalid_argument("FlowNetwork: capacity would go negative");
  set_capacity(arc, cap_[2 * arc] + delta);
}

void FlowNetwork::restore() {
  // Undo the last flow on the arcs it touched, so res_ equals cap_ again.
  if (res_.size() != cap_.size()) {
    res_ = cap_;
  } else {
    for (int e : touched_) {
      res_[e] = cap_[e];
      res_[e ^ 1] = cap_[e ^ 1];
    }
  }
  touched_.clear();
}

void FlowNetwork::build() {
  const int n = num_nodes();
  first_.assign(n + 1, 0);
  for (int u : from_) ++first_[u + 1];
  for (int i = 0; i < n; ++i) first_[i + 1] += first_[i];
  adj_.assign(from_.size(), 0);
  std::vector<int> fill(first_.begin(), first_.end() - 1);
  for (int e = 0; e < static_cast<int>(from_.size()); ++e) adj_[fill[from_[e]]++] = e;
  pending_nodes_ = 0;
  res_.clear();  // sizes changed: restore() copies cap_ afresh
  touched_.clear();
  level_.assign(n, -1);
  next_.assign(n, 0);
  dirty_ = false;
}

bool FlowNetwork::bfs(int s, int t) {
  std::fill(level_.begin(), level_.end(), -1);
  std::vector<int>& queue = queue_;
  queue.clear();
  queue.push_back(s);
  level_[s] = 0;
  for (size_t head = 0; head < queue.size(); ++head) {
    const int v = queue[head];
    for (int i = first_[v]; i < first_[v + 1]; ++i) {
      const int e = adj_[i];
      const int w = to_[e];
      if (res_[e] > 0 && level_[w] < 0) {
        level_[w] = level_[v] + 1;
        if (w == t) return true;
        queue.push_back(w);
      }
    }
  }
  return level_[t] >= 0;
}

int64_t FlowNetwork::dfs(int v, int t, int64_t pushed) {
  if (v == t) return pushed;
  for (int& i = next_[v]; i < first_[v + 1]; ++i) {
    const int e = adj_[i];
    const int w = to_[e];
    if (res_[e] <= 0 || level_[w] != level_[v] + 1) continue;
    const int64_t got = dfs(w, t, std::min(pushed, res_[e]));
    if (got > 0) {
      res_[e] -= got;
      res_[e ^ 1] += got;
      touched_.push_back(e);
      return got;
    }
  }
  return 0;
}

int64_t FlowNetwork::max_flow(int s, int t, int64_t limit) {
  if (dirty_) build();
  const int n = num_nodes();
  if (s < 0 || t < 0 || s >= n || t >= n) throw std::out_of_range("FlowNetwork::max_flow: node out of range");
  if (s == t) throw std::invalid_argument("FlowNetwork::max_flow: source equals sink");
  restore();
  last_source_ = s;
  int64_t flow = 0;
  while (flow < limit && bfs(s, t)) {
    std::copy(first_.begin(), first_.end() - 1, next_.begin());
    while (flow < limit) {
      const int64_t got = dfs(s, t, limit - flow);
      if (got == 0) break;
      flow += got;
    }
  }
  return flow;
}

std::vector<uint8_t> FlowNetwork::source_side() const {
  const int n = num_nodes();
  std::vector<uint8_t> seen(n, 0);
  if (last_source_ < 0 || res_.size() != cap_.size()) return seen;
  std::vector<int> stack{last_source_};
  seen[last_source_] = 1;
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    for (int i = first_[v]; i < first_[v + 1]; ++i) {
      const int e = adj_[i];
      if (res_[e] > 0 && !seen[to_[e]]) {
        seen[to_[e]] = 1;
        stack.push_back(to_[e]);
      }
    }
  }
  return seen;
}

std::vector<int64_t> FlowNetwork::arc_flows() const {
  std::vector<int64_t> out(num_arcs(), 0);
  if (res_.size() != cap_.size()) return out;
  for (int a = 0; a < num_arcs(); ++a) out[a] = res_[2 * a + 1];
  return out;
}

std::pair<int, int64_t> FlowNetwork::first_short_sink(int s, const std::vector<int>& sinks, int64_t need) {
  for (int t : sinks) {
    const int64_t flow = max_flow(s, t, need);
    if (flow < need) return {t, flow};
  }
  return {-1, need};
}

}  // namespace mscomm::graph
