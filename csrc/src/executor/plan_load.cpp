// Plan loader: a small JSON reader (bounded depth and size) and the checks that make every
// index the executor later trusts safe. Nothing here assumes the Python validator ran: a
// malformed or hostile plan ends in InvalidArgument naming the rank and step, never in a crash
// or an out-of-bounds access.
//
// Checks, in order: fields and types; every peer, buffer name and chunk index against the plan's
// sizes (the input is never written); then all ranks are run symbolically, in an order a real
// run could take (a wait proceeds only after its signal): a deadlock, a pair whose signals and
// waits do not match, a put that no later signal makes visible, a read of a scratch chunk that
// nothing has written, or a step mixing chunks of different classes (sizes) is refused.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>

#include "executor.hpp"
#include "mscomm/errors.hpp"

namespace mscomm::executor {

namespace {

// ---- JSON ------------------------------------------------------------------------------------

struct Json {
  enum Type : uint8_t { Null, Bool, Int, Real, Str, Arr, Obj } type = Null;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<Json> a;
  std::vector<std::pair<std::string, Json>> o;

  const Json* get(const char* key) const {
    if (type != Obj) return nullptr;
    for (const auto& [k, v] : o)
      if (k == key) return &v;
    return nullptr;
  }
};

class Reader {
 public:
  explicit Reader(const std::string& text) : p_(text.data()), end_(text.data() + text.size()) {}
  Json document() {
    Json v = value(0);
    space();
    if (p_ != end_) fail("unexpected text after the plan object");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;
  [[noreturn]] void fail(const std::string& why) const {
    throw InvalidArgument("plan: malformed JSON: " + why + " (at byte " + std::to_string(pos_()) + ")");
  }
  size_t pos_() const { return static_cast<size_t>(end_ - p_); }
  void space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) {
    space();
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(const char* w) {
    size_t n = std::strlen(w);
    if (static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, w, n) == 0) {
      p_ += n;
      return true;
    }
    return false;
  }
  Json value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    space();
    if (p_ == end_) fail("unexpected end");
    Json v;
    const char c = *p_;
    if (c == '{') {
      ++p_;
      v.type = Json::Obj;
      if (eat('}')) return v;
      do {
        space();
        if (p_ == end_ || *p_ != '"') fail("expected a key");
        std::string key = string();
        expect(':');
        v.o.emplace_back(std::move(key), value(depth + 1));
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++p_;
      v.type = Json::Arr;
      if (eat(']')) return v;
      do v.a.push_back(value(depth + 1));
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Json::Str;
      v.s = string();
    } else if (word("true")) {
      v.type = Json::Bool;
      v.b = true;
    } else if (word("false")) {
      v.type = Json::Bool;
    } else if (word("null")) {
      v.type = Json::Null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number(v);
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return v;
  }
  std::string string() {
    ++p_;  // opening quote
    std::string out;
    while (true) {
      if (p_ == end_) fail("unterminated string");
      char c = *p_++;
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ == end_) fail("unterminated escape");
      char e = *p_++;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u':
          if (end_ - p_ < 4) fail("short \\u escape");
          p_ += 4;
          out += '?';  // names only: no need to decode
          break;
        default: out += e;
      }
    }
  }
  void number(Json& v) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    bool real = false;
    while (p_ != end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '.' || *p_ == 'e' || *p_ == 'E' || *p_ == '+' ||
                          *p_ == '-')) {
      real = real || *p_ == '.' || *p_ == 'e' || *p_ == 'E';
      ++p_;
    }
    std::string text(start, p_);
    char* end = nullptr;
    if (!real) {
      errno = 0;
      long long x = std::strtoll(text.c_str(), &end, 10);
      if (*end == '\0' && errno == 0 && !text.empty() && text != "-") {
        v.type = Json::Int;
        v.i = x;
        return;
      }
    }
    double x = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(x)) fail("bad number '" + text + "'");
    v.type = Json::Real;
    v.d = x;
  }
  const char* p_;
  const char* end_;
};

// ---- plan fields -------------------------------------------------------------------------------

constexpr int64_t kMaxRanks = 4096, kMaxChunks = int64_t{1} << 22, kMaxSteps = int64_t{1} << 24, kMaxFanIn = 4096;

struct RawStep {
  OpKind kind;
  int peer = -1;
  std::vector<Ref> srcs;  // put/copy: one
  Ref dst{};
};

struct Loader {
  std::string name = "unnamed";
  CollectiveKind collective{};
  std::string collective_name;
  int N = 0, k = 0;
  std::vector<uint32_t> scratch;
  std::vector<std::vector<RawStep>> steps;

  [[noreturn]] void fail(const std::string& why) const {
    throw InvalidArgument("plan '" + name + "': " + why);
  }
  [[noreturn]] void fail_step(int r, size_t i, const char* op, const std::string& why) const {
    fail("rank " + std::to_string(r) + " step " + std::to_string(i) + " (" + op + "): " + why);
  }

  int64_t integer(const Json* v, const char* what, int64_t lo, int64_t hi) const {
    if (!v) fail(std::string("missing the field '") + what + "'");
    if (v->type != Json::Int) fail(std::string("'") + what + "' must be an integer");
    if (v->i < lo || v->i > hi)
      fail(std::string("'") + what + "' is " + std::to_string(v->i) + ", outside [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]");
    return v->i;
  }

  uint32_t chunks(Buf b, int owner) const {
    const uint32_t full = static_cast<uint32_t>(N) * static_cast<uint32_t>(k), shard = static_cast<uint32_t>(k);
    if (b == Buf::Scratch) return scratch[owner];
    if (collective == CollectiveKind::Allreduce) return full;
    const bool input = b == Buf::Input;
    return (collective == CollectiveKind::Allgather) == input ? shard : full;
  }

  Ref ref(const Json* v, int r, size_t i, const char* op, int owner) const {
    if (!v || v->type != Json::Arr || v->a.size() != 2 || v->a[0].type != Json::Str || v->a[1].type != Json::Int)
      fail_step(r, i, op, "a chunk reference must be [buffer, index]");
    const std::string& b = v->a[0].s;
    Buf buf;
    if (b == "input") buf = Buf::Input;
    else if (b == "output") buf = Buf::Output;
    else if (b == "scratch") buf = Buf::Scratch;
    else fail_step(r, i, op, "unknown buffer '" + b + "' (input, output or scratch)");
    const int64_t index = v->a[1].i;
    const uint32_t n = chunks(buf, owner);
    if (index < 0 || index >= static_cast<int64_t>(n))
      fail_step(r, i, op, b + "[" + std::to_string(index) + "] of rank " + std::to_string(owner) +
                              " is out of range (" + std::to_string(n) + " chunks)");
    return Ref{buf, static_cast<uint32_t>(index)};
  }

  void parse(const Json& root, int size) {
    if (root.type != Json::Obj) fail("a plan must be a JSON object");
    if (const Json* n = root.get("name")) {
      if (n->type != Json::Str || n->s.size() > 200) fail("'name' must be a string of at most 200 characters");
      name = n->s;
    }
    const Json* c = root.get("collective");
    if (!c || c->type != Json::Str) fail("missing the field 'collective' (a string)");
    collective_name = c->s;
    if (c->s == "allgather") collective = CollectiveKind::Allgather;
    else if (c->s == "reduce_scatter") collective = CollectiveKind::ReduceScatter;
    else if (c->s == "allreduce") collective = CollectiveKind::Allreduce;
    else fail("collective must be allgather, reduce_scatter or allreduce, got '" + c->s + "'");
    N = static_cast<int>(integer(root.get("num_ranks"), "num_ranks", 1, kMaxRanks));
    if (N != size)
      fail("the plan is for " + std::to_string(N) + " ranks but the communicator has " + std::to_string(size) +
           " (plan rank r runs on communicator rank r; generate the plan for " + std::to_string(size) + " ranks)");
    k = static_cast<int>(integer(root.get("k"), "k", 1, kMaxChunks));
    if (static_cast<int64_t>(N) * k > kMaxChunks) fail("num_ranks x k is too large");
    const Json* ranks = root.get("ranks");
    if (!ranks || ranks->type != Json::Arr) fail("missing the field 'ranks' (a list)");
    if (ranks->a.size() != static_cast<size_t>(N))
      fail("'ranks' lists " + std::to_string(ranks->a.size()) + " ranks, expected " + std::to_string(N));
    scratch.assign(N, 0);
    for (int r = 0; r < N; ++r) {
      const Json& e = ranks->a[r];
      if (e.type != Json::Obj) fail("ranks[" + std::to_string(r) + "] must be an object");
      if (const Json* rr = e.get("rank"))
        if (rr->type != Json::Int || rr->i != r) fail("ranks[" + std::to_string(r) + "] names another rank");
      const Json* sc = e.get("scratch_chunks");
      scratch[r] = sc ? static_cast<uint32_t>(integer(sc, "scratch_chunks", 0, kMaxChunks)) : 0;
    }
    steps.resize(N);
    int64_t total = 0;
    for (int r = 0; r < N; ++r) {
      const Json* list = ranks->a[r].get("steps");
      if (!list || list->type != Json::Arr) fail("rank " + std::to_string(r) + ": 'steps' must be a list");
      total += static_cast<int64_t>(list->a.size());
      if (total > kMaxSteps) fail("too many steps");
      for (size_t i = 0; i < list->a.size(); ++i) steps[r].push_back(step(list->a[i], r, i));
    }
  }

  RawStep step(const Json& s, int r, size_t i) const {
    const Json* op = s.get("op");
    if (s.type != Json::Obj || !op || op->type != Json::Str)
      fail("rank " + std::to_string(r) + " step " + std::to_string(i) + ": a step must be an object with an 'op'");
    RawStep st;
    const std::string& o = op->s;
    const char* name = o.c_str();
    if (o == "put") st.kind = OpKind::Put;
    else if (o == "signal") st.kind = OpKind::Signal;
    else if (o == "wait") st.kind = OpKind::Wait;
    else if (o == "reduce") st.kind = OpKind::Reduce;
    else if (o == "copy") st.kind = OpKind::Copy;
    else fail_step(r, i, "?", "unknown op '" + o + "' (put, signal, wait, reduce, copy)");
    if (st.kind == OpKind::Put || st.kind == OpKind::Signal || st.kind == OpKind::Wait) {
      const Json* p = s.get("peer");
      if (!p || p->type != Json::Int) fail_step(r, i, name, "missing the integer field 'peer'");
      if (p->i < 0 || p->i >= N || p->i == r)
        fail_step(r, i, name, "peer " + std::to_string(p->i) + " is not another rank of this " + std::to_string(N) +
                                  "-rank plan");
      st.peer = static_cast<int>(p->i);
    }
    if (st.kind == OpKind::Put || st.kind == OpKind::Copy) {
      st.srcs.push_back(ref(s.get("src"), r, i, name, r));
      st.dst = ref(s.get("dst"), r, i, name, st.kind == OpKind::Put ? st.peer : r);
    } else if (st.kind == OpKind::Reduce) {
      const Json* srcs = s.get("srcs");
      if (!srcs || srcs->type != Json::Arr || srcs->a.empty() || srcs->a.size() > static_cast<size_t>(kMaxFanIn))
        fail_step(r, i, name, "'srcs' must be a list of 1 to " + std::to_string(kMaxFanIn) + " chunk references");
      for (const Json& x : srcs->a) st.srcs.push_back(ref(&x, r, i, name, r));
      st.dst = ref(s.get("dst"), r, i, name, r);
    }
    if ((st.kind == OpKind::Put || st.kind == OpKind::Copy || st.kind == OpKind::Reduce) && st.dst.buf == Buf::Input)
      fail_step(r, i, name, "writes input[" + std::to_string(st.dst.index) + "]" +
                                (st.kind == OpKind::Put ? " of rank " + std::to_string(st.peer) : "") +
                                "; the input is read-only");
    return st;
  }

  // Which global chunk a user-buffer chunk holds.
  int64_t user_class(Buf b, uint32_t index, int owner) const {
    const bool shard = (collective == CollectiveKind::Allgather && b == Buf::Input) ||
                       (collective == CollectiveKind::ReduceScatter && b == Buf::Output);
    return shard ? static_cast<int64_t>(owner) * k + index : index;
  }
};

const char* op_text(OpKind k) {
  switch (k) {
    case OpKind::Put: return "put";
    case OpKind::Signal: return "signal";
    case OpKind::Wait: return "wait";
    case OpKind::Reduce: return "reduce";
    default: return "copy";
  }
}

const char* buf_text(Buf b) { return b == Buf::Input ? "input" : b == Buf::Output ? "output" : "scratch"; }

uint64_t fnv(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

std::shared_ptr<Program> compile(const std::string& json, int me, int size) {
  if (json.size() > (size_t{1} << 30)) throw InvalidArgument("plan: the JSON text is larger than 1 GiB");
  Loader L;
  {
    Json root = Reader(json).document();
    L.parse(root, size);
  }
  if (me < 0 || me >= L.N) throw InvalidArgument("plan: rank " + std::to_string(me) + " is not in the plan");
  const int N = L.N;
  auto prog = std::make_shared<Program>();
  prog->name = L.name;
  prog->collective = L.collective;
  prog->collective_name = L.collective_name;
  prog->num_ranks = N;
  prog->k = L.k;
  prog->rank = me;

  // Landing zones: every output chunk a peer puts into gets a place in the receiver's slot, after
  // its scratch chunks, numbered in (rank, step) order so every rank computes the same layout.
  std::vector<std::unordered_map<uint32_t, uint32_t>> landing(N);
  for (int r = 0; r < N; ++r)
    for (const RawStep& s : L.steps[r])
      if (s.kind == OpKind::Put && s.dst.buf == Buf::Output) landing[s.peer].emplace(s.dst.index, 0);
  prog->footprint.resize(N);
  for (int q = 0; q < N; ++q) {
    std::vector<uint32_t> outs;
    for (const auto& [idx, unused] : landing[q]) outs.push_back(idx);
    std::sort(outs.begin(), outs.end());
    for (size_t j = 0; j < outs.size(); ++j) landing[q][outs[j]] = L.scratch[q] + static_cast<uint32_t>(j);
    const uint64_t f = uint64_t{L.scratch[q]} + outs.size();
    if (f > static_cast<uint64_t>(kMaxChunks)) L.fail("rank " + std::to_string(q) + " needs too many staging chunks");
    prog->footprint[q] = static_cast<uint32_t>(f);
    prog->max_footprint = std::max(prog->max_footprint, prog->footprint[q]);
  }
  auto slot_of = [&](int q, const Ref& d) { return d.buf == Buf::Scratch ? d.index : landing[q].at(d.index); };

  // Symbolic run of all ranks (a worklist: a rank blocked on a wait resumes when that signal comes).
  std::vector<std::vector<int64_t>> scratch_class(N);
  for (int r = 0; r < N; ++r) scratch_class[r].assign(L.scratch[r], -1);
  auto pair = [N](int s, int q) { return static_cast<uint64_t>(s) * static_cast<uint64_t>(N) + static_cast<uint64_t>(q); };
  std::unordered_map<uint64_t, uint64_t> signals, waits;
  std::unordered_map<uint64_t, int64_t> pending_put;  // (sender, receiver) -> step of a put no signal covered yet
  std::unordered_map<uint64_t, std::vector<std::pair<uint32_t, uint32_t>>> pending_out;  // to me: (slot, output)
  std::map<std::pair<int, uint64_t>, std::vector<std::pair<uint32_t, uint32_t>>> covers;  // (sender, signal #) -> copy-outs
  std::vector<size_t> pc(N, 0);
  std::vector<int> blocked_on(N, -1);
  std::vector<uint32_t> op_class;  // my steps' classes
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> my_copy_out(L.steps[me].size());
  op_class.assign(L.steps[me].size(), 0);
  std::deque<int> ready;
  for (int r = 0; r < N; ++r) ready.push_back(r);

  auto class_of = [&](int r, size_t i, const RawStep& s, const Ref& ref) -> int64_t {
    if (ref.buf != Buf::Scratch) return L.user_class(ref.buf, ref.index, r);
    int64_t c = scratch_class[r][ref.index];
    if (c < 0)
      L.fail_step(r, i, op_text(s.kind), "reads scratch[" + std::to_string(ref.index) +
                                             "] before anything is written there");
    return c;
  };
  auto land = [&](int r, size_t i, const RawStep& s, int owner, const Ref& dst, int64_t c) {
    if (dst.buf == Buf::Scratch) {
      int64_t& have = scratch_class[owner][dst.index];
      if (have >= 0 && have != c)
        L.fail_step(r, i, op_text(s.kind), "writes chunk " + std::to_string(c) + " into scratch[" +
                                               std::to_string(dst.index) + "] of rank " + std::to_string(owner) +
                                               ", which holds chunk " + std::to_string(have) + " (of another size)");
      have = c;
      return;
    }
    const int64_t want = L.user_class(dst.buf, dst.index, owner);
    if (want != c)
      L.fail_step(r, i, op_text(s.kind), "writes chunk " + std::to_string(c) + " into " + buf_text(dst.buf) + "[" +
                                             std::to_string(dst.index) + "] of rank " + std::to_string(owner) +
                                             ", which is chunk " + std::to_string(want));
  };

  while (!ready.empty()) {
    const int r = ready.front();
    ready.pop_front();
    blocked_on[r] = -1;
    const auto& list = L.steps[r];
    while (pc[r] < list.size()) {
      const size_t i = pc[r];
      const RawStep& s = list[i];
      if (s.kind == OpKind::Wait) {
        const uint64_t key = pair(s.peer, r);
        if (signals[key] <= waits[key]) {
          blocked_on[r] = s.peer;
          break;
        }
        const uint64_t n = ++waits[key];
        if (r == me) {
          auto it = covers.find({s.peer, n});
          if (it != covers.end()) my_copy_out[i] = std::move(it->second);
        }
      } else if (s.kind == OpKind::Signal) {
        const uint64_t key = pair(r, s.peer);
        const uint64_t n = ++signals[key];
        pending_put.erase(key);
        if (s.peer == me) {
          auto it = pending_out.find(key);
          if (it != pending_out.end()) {
            covers[{r, n}] = std::move(it->second);
            pending_out.erase(it);
          }
        }
        if (blocked_on[s.peer] == r) {
          blocked_on[s.peer] = -2;  // queued
          ready.push_back(s.peer);
        }
      } else {
        int64_t c = class_of(r, i, s, s.srcs[0]);
        for (size_t j = 1; j < s.srcs.size(); ++j)
          if (class_of(r, i, s, s.srcs[j]) != c)
            L.fail_step(r, i, "reduce", "sources hold different chunks (" + std::to_string(c) + " and " +
                                            std::to_string(class_of(r, i, s, s.srcs[j])) + ")");
        const int owner = s.kind == OpKind::Put ? s.peer : r;
        land(r, i, s, owner, s.dst, c);
        if (r == me) op_class[i] = static_cast<uint32_t>(c);
        if (s.kind == OpKind::Put) {
          pending_put[pair(r, s.peer)] = static_cast<int64_t>(i);
          if (s.peer == me && s.dst.buf == Buf::Output)
            pending_out[pair(r, s.peer)].emplace_back(slot_of(s.peer, s.dst), s.dst.index);
        }
      }
      ++pc[r];
    }
  }
  std::string stuck;
  int nstuck = 0;
  for (int r = 0; r < N; ++r)
    if (pc[r] < L.steps[r].size() && nstuck++ < 4)
      stuck += std::string(stuck.empty() ? "" : ", ") + "rank " + std::to_string(r) + " step " +
               std::to_string(pc[r]) + " (wait on rank " + std::to_string(L.steps[r][pc[r]].peer) + ")";
  if (nstuck) L.fail("the steps deadlock: " + std::to_string(nstuck) + " rank(s) wait forever, e.g. " + stuck);
  for (int s = 0; s < N; ++s)
    for (int q = 0; q < N; ++q) {
      const uint64_t key = pair(s, q);
      auto a = signals.find(key), b = waits.find(key);
      const uint64_t ns = a == signals.end() ? 0 : a->second, nw = b == waits.end() ? 0 : b->second;
      if (ns != nw)
        L.fail("rank " + std::to_string(s) + " signals rank " + std::to_string(q) + " " + std::to_string(ns) +
               " times, but rank " + std::to_string(q) + " waits for it " + std::to_string(nw) + " times");
      auto p = pending_put.find(key);
      if (p != pending_put.end())
        L.fail_step(s, static_cast<size_t>(p->second), "put", "puts into rank " + std::to_string(q) +
                                                                   ", but no later signal to that rank makes it visible");
    }

  // This rank's program, and the in-place hazards along its step order.
  const auto& mine = L.steps[me];
  std::vector<char> to_peer(N, 0), from_peer(N, 0), written(static_cast<size_t>(N) * L.k, 0), sent(written.size(), 0);
  uint64_t h = 1469598103934665603ULL;
  h = fnv(fnv(fnv(h, static_cast<uint64_t>(L.collective)), static_cast<uint64_t>(N)), static_cast<uint64_t>(L.k));
  for (int r = 0; r < N; ++r) {
    h = fnv(h, L.scratch[r]);
    for (const RawStep& s : L.steps[r]) {
      h = fnv(fnv(h, static_cast<uint64_t>(s.kind)), static_cast<uint64_t>(s.peer + 1));
      for (const Ref& x : s.srcs) h = fnv(h, (uint64_t{x.index} << 8) | static_cast<uint64_t>(x.buf));
      h = fnv(h, (uint64_t{s.dst.index} << 8) | static_cast<uint64_t>(s.dst.buf));
    }
  }
  prog->digest64 = h;
  char hex[17];
  snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  prog->digest = hex;
  for (size_t i = 0; i < mine.size(); ++i) {
    const RawStep& s = mine[i];
    Op op;
    op.kind = s.kind;
    op.step = static_cast<int>(i);
    op.peer = s.peer;
    op.cls = op_class[i];
    op.dst = s.dst;
    op.srcs = s.srcs;
    if (s.kind == OpKind::Put) op.remote_slot = slot_of(s.peer, s.dst);
    if (s.kind == OpKind::Put || s.kind == OpKind::Signal) {
      op.first_to_peer = !to_peer[s.peer];
      to_peer[s.peer] = 1;
    }
    if (s.kind == OpKind::Wait) {
      op.first_from_peer = !from_peer[s.peer];
      from_peer[s.peer] = 1;
      op.copy_out = std::move(my_copy_out[i]);
    }
    // Input and output chunks of one class share memory in place; reads of an input chunk after
    // its output twin is written would see the result, and a TCP put of it may still be queued.
    for (const Ref& x : op.srcs)
      if (x.buf == Buf::Input && written[op.cls]) prog->in_place_safe = false;
    if (s.kind == OpKind::Put && s.srcs[0].buf != Buf::Scratch) sent[op.cls] = 1;
    auto writes_output = [&](uint32_t c) {
      if (sent[c]) op.sync_before = true;
      written[c] = 1;
    };
    if ((s.kind == OpKind::Reduce || s.kind == OpKind::Copy) && s.dst.buf == Buf::Output) writes_output(op.cls);
    for (const auto& [slot, out] : op.copy_out)
      writes_output(static_cast<uint32_t>(L.user_class(Buf::Output, out, me)));
    prog->ops.push_back(std::move(op));
  }
  for (int q = 0; q < N; ++q)
    if (to_peer[q]) prog->put_peers.push_back(q);
  prog->num_steps = mine.size();
  return prog;
}

}  // namespace mscomm::executor
