// Programs: MLX graphs captured once and replayed on new inputs (Emily.Compiler's native and
// fused lanes).
//
// Capture. The compiler runs a defn expression once through Emily.Backend on *placeholder*
// arrays (no primitive, never evaluable: MLX's eval throws on them before doing anything),
// which builds a lazy MLX graph with exactly the backend's Nx->MLX translation. A Builder
// then walks that graph from the requested arrays back to arrays it already knows (program
// inputs, values defined by control-flow steps, values computed by earlier tapes) and records
// a Tape: the primitives in topological order, each with its input registers and its output
// shapes and dtypes. Arrays with no primitive, or already scheduled, are constants (kept by
// reference). Reaching a placeholder that is not an input of this builder is an error (a
// value leaking in from another scope).
//
// Control flow. `while` and `cond` are steps between tapes that run sub-programs: the loop
// evaluates the condition program, reads the predicate and runs the body program, all on the
// worker thread inside one call.
//
// Replay. Each node is rebuilt with the *same primitive* on the new inputs (as
// mlx::core::compile's own replay does); multi-output primitives through make_arrays.
// Primitives carry the stream they were captured with, so a program runs on the worker
// (thread) that owns that stream.
//
// Fused. A tape's replay function wrapped in mlx::core::compile (per tape, created lazily on
// the worker thread and erased on that thread when the tape dies: the compile cache is per
// thread). Function ids come from a global counter, never from addresses, so a stale cache
// entry can never match a new tape.
#include <atomic>
#include <chrono>
#include <functional>
#include <cstring>
#include <mutex>
#include <optional>
#include <algorithm>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "mlx/compile_impl.h"
#include "cpu_kernels.hpp"
#include "mlx/primitives.h"
#include "shim.hpp"

namespace emily::program {

using Reg = uint32_t;

struct Node {
  std::shared_ptr<mx::Primitive> prim;
  std::vector<Reg> in;
  std::vector<mx::Shape> shapes;
  std::vector<mx::Dtype> dtypes;
};

std::atomic<uintptr_t> next_fun_id{1};

// One captured MLX fragment. Registers: [0, n_in) inputs, then constants, then each node's
// outputs in order.
struct Tape {
  uint32_t n_in = 0;
  std::vector<mx::Shape> in_shapes;  // of the input registers
  std::vector<mx::Dtype> in_dtypes;
  std::vector<mx::array> consts;
  std::vector<Node> nodes;
  std::vector<Reg> outs;
  size_t n_regs = 0;

  // Fused lane: created on the worker thread on first use.
  std::function<std::vector<mx::array>(const std::vector<mx::array>&)> compiled;
  uintptr_t fun_id = 0;

  ~Tape() {
    if (fun_id != 0) {
      try {
        mx::detail::compile_erase(mx::detail::compile_cache(), fun_id);
      } catch (...) {
      }
    }
  }

  std::vector<mx::array> replay(const std::vector<mx::array>& inputs) const {
    if (inputs.size() != n_in)
      throw std::invalid_argument("program tape expects " + std::to_string(n_in) + " inputs, got " +
                                  std::to_string(inputs.size()));
    std::vector<mx::array> regs;
    regs.reserve(n_regs);
    for (auto& a : inputs) regs.push_back(a);
    for (auto& c : consts) regs.push_back(c);
    std::vector<mx::array> ins;
    for (auto& n : nodes) {
      check_owned(n.prim->stream());
      ins.clear();
      ins.reserve(n.in.size());
      for (Reg r : n.in) ins.push_back(regs[r]);
      if (n.shapes.size() == 1) {
        regs.emplace_back(n.shapes[0], n.dtypes[0], n.prim, std::move(ins));
        ins = std::vector<mx::array>();
      } else {
        auto outs = mx::array::make_arrays(n.shapes, n.dtypes, n.prim, ins);
        for (auto& o : outs) regs.push_back(std::move(o));
      }
    }
    std::vector<mx::array> out;
    out.reserve(outs.size());
    for (Reg r : outs) out.push_back(regs[r]);
    return out;
  }

  // Constant folding, done once on the worker thread before the first run: nodes computed
  // from constants alone (the backend's broadcast scalars, iotas, ...) are evaluated once
  // and become constants. Skipped when the values to keep would exceed kFoldLimit bytes
  // (broadcasts count as the bytes they really hold).
  static constexpr size_t kFoldLimit = 16 << 20;
  bool folded = false;

  void fold() {
    folded = true;
    std::vector<char> is_const(n_regs, 0);
    for (size_t i = 0; i < consts.size(); i++) is_const[n_in + i] = 1;
    std::vector<char> node_const(nodes.size(), 0);
    Reg r = n_in + static_cast<Reg>(consts.size());
    bool any = false;
    for (size_t k = 0; k < nodes.size(); k++) {
      auto& n = nodes[k];
      // Nodes without inputs (arange) are constant too; loads are not.
      bool c = std::strcmp(n.prim->name(), "Load") != 0;
      for (Reg i : n.in) c = c && is_const[i];
      node_const[k] = c;
      any = any || c;
      for (size_t o = 0; o < n.shapes.size(); o++) is_const[r++] = c;
    }
    if (!any) return;
    // Registers of constant values read by non-constant nodes or by the outputs.
    std::vector<char> needed(n_regs, 0);
    for (size_t k = 0; k < nodes.size(); k++)
      if (!node_const[k])
        for (Reg i : nodes[k].in)
          if (is_const[i]) needed[i] = 1;
    for (Reg o : outs)
      if (is_const[o]) needed[o] = 1;
    // Evaluate the constant nodes (replaying them on the constants).
    std::vector<std::optional<mx::array>> regs(n_regs);
    for (size_t i = 0; i < consts.size(); i++) regs[n_in + i] = consts[i];
    std::vector<mx::array> ins;
    r = n_in + static_cast<Reg>(consts.size());
    for (size_t k = 0; k < nodes.size(); k++) {
      auto& n = nodes[k];
      if (node_const[k]) {
        ins.clear();
        for (Reg i : n.in) ins.push_back(*regs[i]);
        if (n.shapes.size() == 1) {
          regs[r] = mx::array(n.shapes[0], n.dtypes[0], n.prim, ins);
        } else {
          auto outs_k = mx::array::make_arrays(n.shapes, n.dtypes, n.prim, ins);
          for (size_t o = 0; o < outs_k.size(); o++) regs[r + o] = outs_k[o];
        }
      }
      r += static_cast<Reg>(n.shapes.size());
    }
    std::vector<mx::array> keep;
    for (Reg i = n_in + static_cast<Reg>(consts.size()); i < n_regs; i++)
      if (needed[i]) keep.push_back(*regs[i]);
    mx::eval(keep);
    size_t bytes = 0;
    for (auto& a : keep) bytes += a.data_size() * a.itemsize();
    if (bytes > kFoldLimit) return;
    // Rebuild: inputs, the constants still read, the folded values, the other nodes.
    std::vector<Reg> remap(n_regs, UINT32_MAX);
    for (Reg i = 0; i < n_in; i++) remap[i] = i;
    std::vector<mx::array> new_consts;
    for (Reg i = n_in; i < n_regs; i++) {
      if (is_const[i] && needed[i]) {
        remap[i] = n_in + static_cast<Reg>(new_consts.size());
        new_consts.push_back(*regs[i]);
      }
    }
    Reg next = n_in + static_cast<Reg>(new_consts.size());
    std::vector<Node> new_nodes;
    r = n_in + static_cast<Reg>(consts.size());
    for (size_t k = 0; k < nodes.size(); k++) {
      auto& n = nodes[k];
      if (!node_const[k]) {
        Node m = n;
        for (auto& i : m.in) i = remap[i];
        for (size_t o = 0; o < n.shapes.size(); o++) remap[r + o] = next++;
        new_nodes.push_back(std::move(m));
      }
      r += static_cast<Reg>(n.shapes.size());
    }
    std::lock_guard<std::mutex> g(mu);
    for (auto& o : outs) o = remap[o];
    consts = std::move(new_consts);
    nodes = std::move(new_nodes);
    n_regs = next;
  }

  // Held while fold() swaps the tape's contents and while other threads inspect it (the
  // worker thread alone runs and folds).
  mutable std::mutex mu;
  std::pair<size_t, size_t> sizes() const {
    std::lock_guard<std::mutex> g(mu);
    return {nodes.size(), consts.size()};
  }

  // MLX's CUDA backend generates code for fused kernels that casts complex to float
  // (nvrtc: "no suitable conversion function from complex64_t to float"): tapes with a
  // complex node on a GPU stream are replayed unfused.
  bool fusable(const std::vector<mx::array>& inputs) const {
    bool gpu = false, complex = false;
    for (const auto& n : nodes) {
      gpu = gpu || n.prim->stream().device == mx::Device::gpu;
      for (auto d : n.dtypes) complex = complex || d == mx::complex64;
    }
    for (const auto& a : inputs) complex = complex || a.dtype() == mx::complex64;
    for (const auto& a : consts) complex = complex || a.dtype() == mx::complex64;
    return !(gpu && complex);
  }

  // The register of each node's first output.
  std::vector<Reg> node_bases() const {
    std::vector<Reg> base(nodes.size());
    Reg r = n_in + static_cast<Reg>(consts.size());
    for (size_t k = 0; k < nodes.size(); k++) {
      base[k] = r;
      r += static_cast<Reg>(nodes[k].shapes.size());
    }
    return base;
  }

  // The node computing each register, or -1 (inputs and constants).
  std::vector<int> producers() const {
    std::vector<int> producer(n_regs, -1);
    std::vector<Reg> base = node_bases();
    for (size_t k = 0; k < nodes.size(); k++)
      for (size_t o = 0; o < nodes[k].shapes.size(); o++) producer[base[k] + o] = static_cast<int>(k);
    return producer;
  }

  // Softmaxes composed of Emily's CPU kernels become one row kernel (cpu_kernels.cc), done
  // once after fold(): with D = x - max(x), E = exp(D), S = sum(E) (max and sum over the last
  // axis, kept), the node computing E / S, (1 / S) * E or -log(S) + D (Nx's softmax, Axon's
  // softmax and log_softmax; broadcasts between them) computes from x alone. The nodes it
  // replaces stay for any other reader; prune() drops the unread ones.
  void rewrite_softmax() {
    std::vector<int> producer = producers();
    auto node = [&](Reg x) -> const Node* {
      int k = x < producer.size() ? producer[x] : -1;
      return k < 0 || nodes[k].shapes.size() != 1 ? nullptr : &nodes[k];
    };
    auto named = [&](Reg x, const char* name, size_t arity) -> const Node* {
      const Node* n = node(x);
      return n && n->in.size() == arity && std::strcmp(n->prim->name(), name) == 0 ? n : nullptr;
    };
    auto unbroadcast = [&](Reg x) {
      const Node* n = named(x, "Broadcast", 1);
      return n ? n->in[0] : x;
    };
    // x's register when `m` is its reduction by `op` over the last axis of `full`, kept.
    auto last_axis = [&](Reg m, kernels::ReduceOp op, const mx::Shape& full) -> std::optional<Reg> {
      const Node* n = node(m);
      if (!n || n->in.size() != 1 || kernels::reduce_op(*n->prim) != op) return std::nullopt;
      mx::Shape kept = full;
      kept.back() = 1;
      if (n->shapes[0] != kept) return std::nullopt;
      return n->in[0];
    };
    auto is_one = [&](Reg c) {
      if (c < n_in || c >= n_in + consts.size()) return false;
      const mx::array& a = consts[c - n_in];
      if (a.data_size() != 1 || !a.is_available()) return false;
      switch (a.dtype()) {
        case mx::float32: return a.data<float>()[0] == 1.0f;
        case mx::float16: return static_cast<float>(a.data<mx::float16_t>()[0]) == 1.0f;
        case mx::bfloat16: return static_cast<float>(a.data<mx::bfloat16_t>()[0]) == 1.0f;
        default: return false;
      }
    };
    // x when d is x - max(x) (over the last axis, kept) of x's own shape.
    auto centred = [&](Reg d, const mx::Shape& shape) -> std::optional<Reg> {
      const Node* n = named(d, "Subtract", 2);
      if (!n || n->shapes[0] != shape) return std::nullopt;
      auto x = last_axis(unbroadcast(n->in[1]), kernels::ReduceOp::max, shape);
      if (!x || *x != n->in[0]) return std::nullopt;
      return x;
    };
    // (D, x) when s is sum(exp(D)) with D centred x.
    auto exp_sum = [&](Reg s, const mx::Shape& shape) -> std::optional<std::pair<Reg, Reg>> {
      auto e = last_axis(s, kernels::ReduceOp::sum, shape);
      if (!e) return std::nullopt;
      const Node* en = node(*e);
      if (!en || en->in.size() != 1 || kernels::unary_op(*en->prim) != kernels::UnaryOp::exp) return std::nullopt;
      auto x = centred(en->in[0], shape);
      if (!x) return std::nullopt;
      return std::make_pair(en->in[0], *x);
    };
    std::vector<std::pair<size_t, Node>> found;
    for (size_t k = 0; k < nodes.size(); k++) {
      const Node& n = nodes[k];
      if (n.shapes.size() != 1 || n.in.size() != 2 || n.shapes[0].empty()) continue;
      const mx::Shape& shape = n.shapes[0];
      std::string_view name = n.prim->name();
      std::optional<Reg> x;
      kernels::RowOp op;
      if (name == "Divide") {
        // E / S
        auto ds = exp_sum(unbroadcast(n.in[1]), shape);
        const Node* en = node(n.in[0]);
        if (ds && en && en->in.size() == 1 && en->in[0] == ds->first) x = ds->second;
        op = kernels::RowOp::softmax_div;
      } else if (name == "Multiply" || name == "Add") {
        bool mul = name == "Multiply";
        for (int side = 0; side < 2 && !x; side++) {
          Reg other = n.in[1 - side];
          const Node* f = named(unbroadcast(n.in[side]), mul ? "Divide" : "Negative", mul ? 2 : 1);
          if (!f) continue;
          Reg s = f->in.back();
          if (mul && !is_one(f->in[0])) continue;
          if (!mul) {
            const Node* l = named(s, "EmilyLog", 1);
            if (!l) continue;
            s = l->in[0];
          }
          auto ds = exp_sum(s, shape);
          if (!ds) continue;
          // (1 / S) * E: `other` is E = exp(D); -log(S) + D: `other` is D.
          const Node* en = node(other);
          bool ok = mul ? (en && en->in.size() == 1 && en->in[0] == ds->first &&
                           kernels::unary_op(*en->prim) == kernels::UnaryOp::exp)
                        : other == ds->first;
          if (ok) x = ds->second;
        }
        op = mul ? kernels::RowOp::softmax_mul : kernels::RowOp::log_softmax;
      }
      if (!x) continue;
      auto prim = kernels::last_axis_primitive(op, shape, n.dtypes[0], n.prim->stream());
      if (!prim) continue;
      found.emplace_back(k, Node{prim, {*x}, n.shapes, n.dtypes});
    }
    if (found.empty()) return;
    std::lock_guard<std::mutex> g(mu);
    for (auto& [k, m] : found) nodes[k] = std::move(m);
  }

  // Trees of float32 elementwise nodes of one shape on a CPU stream (adds, multiplies,
  // maxima, ..., Emily's unary kernels) become one FastFused node (cpu_kernels.cc), done
  // once after rewrite_softmax. A node joins the tree of its reader when that is its only
  // reader (not a tape output) and is elementwise of the same shape; a lone node is a tree
  // too (the kernel runs on the pool). The tree's root is replaced; prune() drops the rest.
  // Broadcast scalars, rows (biases) and columns (a kept last-axis reduction) are read by
  // the kernel without being broadcast first. Each step rounds as the node it stands for,
  // so results keep their bits.
  void rewrite_fusion() {
    if (in_shapes.size() != n_in) return;
    std::vector<Reg> base = node_bases();
    std::vector<int> producer = producers();
    std::vector<uint32_t> readers(n_regs, 0), reader(n_regs, UINT32_MAX);
    std::vector<mx::Shape> shape(n_regs);
    std::vector<mx::Dtype> dtype(n_regs, mx::float32);
    for (Reg i = 0; i < n_in; i++) shape[i] = in_shapes[i], dtype[i] = in_dtypes[i];
    for (size_t i = 0; i < consts.size(); i++) shape[n_in + i] = consts[i].shape(), dtype[n_in + i] = consts[i].dtype();
    std::vector<Reg> out_reg(nodes.size(), UINT32_MAX);
    for (size_t k = 0; k < nodes.size(); k++) {
      for (Reg i : nodes[k].in) readers[i]++, reader[i] = static_cast<uint32_t>(k);
      for (size_t o = 0; o < nodes[k].shapes.size(); o++) {
        shape[base[k] + o] = nodes[k].shapes[o];
        dtype[base[k] + o] = nodes[k].dtypes[o];
      }
      if (nodes[k].shapes.size() == 1) out_reg[k] = base[k];
    }
    for (Reg o : outs) readers[o] += 2;  // never absorbed
    // The step a node computes, if it is one of the fusable kinds.
    auto step_of = [&](size_t k) -> std::optional<kernels::FusedStep> {
      const Node& n = nodes[k];
      if (n.shapes.size() != 1 || n.dtypes[0] != mx::float32 || n.prim->stream().device != mx::Device::cpu)
        return std::nullopt;
      for (auto d : n.shapes[0])
        if (d == 0) return std::nullopt;
      std::string_view name = n.prim->name();
      kernels::FusedStep st{};
      if (n.in.size() == 2) {
        st.binary = true;
        if (name == "Add") st.binary_op = kernels::BinaryOp::add;
        else if (name == "Subtract") st.binary_op = kernels::BinaryOp::subtract;
        else if (name == "Multiply") st.binary_op = kernels::BinaryOp::multiply;
        else if (name == "Divide") st.binary_op = kernels::BinaryOp::divide;
        else if (name == "Maximum") st.binary_op = kernels::BinaryOp::maximum;
        else if (name == "Minimum") st.binary_op = kernels::BinaryOp::minimum;
        else return std::nullopt;
      } else if (n.in.size() == 1) {
        if (name == "Negative") st.unary_op = kernels::UnaryOp::negative;
        else if (name == "Abs") st.unary_op = kernels::UnaryOp::abs;
        else if (name == "Square") st.unary_op = kernels::UnaryOp::square;
        else if (auto u = kernels::unary_op(*n.prim)) st.unary_op = *u;
        else return std::nullopt;
      } else {
        return std::nullopt;
      }
      for (Reg i : n.in)
        if (dtype[i] != mx::float32) return std::nullopt;
      return st;
    };
    std::vector<std::optional<kernels::FusedStep>> steps(nodes.size());
    for (size_t k = 0; k < nodes.size(); k++) steps[k] = step_of(k);
    // Absorbed into its one reader's tree.
    auto absorbed = [&](size_t k) {
      Reg o = out_reg[k];
      if (!steps[k] || o == UINT32_MAX || readers[o] != 1) return false;
      uint32_t c = reader[o];
      return steps[c].has_value() && nodes[c].shapes[0] == nodes[k].shapes[0];
    };
    std::vector<std::pair<size_t, Node>> found;
    for (size_t root = 0; root < nodes.size(); root++) {
      if (!steps[root] || absorbed(root)) continue;
      const mx::Shape& S = nodes[root].shapes[0];
      if (S.empty()) continue;
      mx::Shape col = S;
      col.back() = 1;
      std::vector<kernels::LeafMode> modes;
      std::vector<Reg> leaf_regs;
      std::vector<kernels::FusedStep> prog;
      bool ok = true;
      auto leaf = [&](Reg x) -> uint32_t {
        kernels::LeafMode mode = kernels::LeafMode::dense;
        Reg src = x;
        int p = producer[x];
        if (p >= 0 && std::strcmp(nodes[p].prim->name(), "Broadcast") == 0 && nodes[p].in.size() == 1 &&
            dtype[nodes[p].in[0]] == mx::float32) {
          Reg b = nodes[p].in[0];
          const mx::Shape& bs = shape[b];
          size_t size = 1;
          for (auto d : bs) size *= static_cast<size_t>(d);
          bool row = !bs.empty() && bs.back() == S.back() && bs.size() <= S.size() &&
                     size == static_cast<size_t>(S.back());
          if (size == 1) mode = kernels::LeafMode::scalar, src = b;
          else if (row) mode = kernels::LeafMode::row, src = b;
          else if (bs == col) mode = kernels::LeafMode::col, src = b;
        } else if (shape[x] != S) {
          size_t size = 1;
          for (auto d : shape[x]) size *= static_cast<size_t>(d);
          if (size != 1) ok = false;
          mode = kernels::LeafMode::scalar;
        }
        for (size_t i = 0; i < leaf_regs.size(); i++)
          if (leaf_regs[i] == src && modes[i] == mode) return static_cast<uint32_t>(i);
        leaf_regs.push_back(src);
        modes.push_back(mode);
        return static_cast<uint32_t>(leaf_regs.size() - 1);
      };
      // Post-order: operands first; leaf indices are fixed up once the leaves are known.
      constexpr uint32_t kStep = 1u << 31;
      std::function<uint32_t(size_t)> emit = [&](size_t k) -> uint32_t {
        kernels::FusedStep st = *steps[k];
        std::vector<uint32_t> ops;
        for (Reg i : nodes[k].in) {
          int p = producer[i];
          if (p >= 0 && absorbed(static_cast<size_t>(p)) && reader[i] == k)
            ops.push_back(emit(static_cast<size_t>(p)) | kStep);
          else
            ops.push_back(leaf(i));
        }
        st.x = ops[0];
        st.y = ops.size() > 1 ? ops[1] : 0;
        prog.push_back(st);
        return static_cast<uint32_t>(prog.size() - 1);
      };
      emit(root);
      if (!ok) continue;
      uint32_t nl = static_cast<uint32_t>(leaf_regs.size());
      for (auto& st : prog) {
        st.x = st.x & kStep ? nl + (st.x & ~kStep) : st.x;
        if (st.binary) st.y = st.y & kStep ? nl + (st.y & ~kStep) : st.y;
      }
      const Node& n = nodes[root];
      auto prim = kernels::fused_primitive(modes, prog, S, mx::float32, n.prim->stream());
      if (!prim) continue;
      found.emplace_back(root, Node{prim, leaf_regs, n.shapes, n.dtypes});
    }
    if (found.empty()) return;
    std::lock_guard<std::mutex> g(mu);
    for (auto& [k, m] : found) nodes[k] = std::move(m);
  }

  // Nodes that no output needs (those the rewrites replaced) are dropped and the registers
  // after the constants renumbered; replay then builds only what is evaluated.
  void prune() {
    Reg first = n_in + static_cast<Reg>(consts.size());
    std::vector<Reg> base = node_bases();
    std::vector<char> needed(n_regs, 0), live(nodes.size(), 0);
    for (Reg o : outs) needed[o] = 1;
    bool all = true;
    for (size_t k = nodes.size(); k-- > 0;) {
      for (size_t o = 0; o < nodes[k].shapes.size(); o++) live[k] = live[k] || needed[base[k] + o];
      if (!live[k]) {
        all = false;
        continue;
      }
      for (Reg i : nodes[k].in) needed[i] = 1;
    }
    if (all) return;
    std::vector<Reg> remap(n_regs, UINT32_MAX);
    for (Reg i = 0; i < first; i++) remap[i] = i;
    std::vector<Node> kept;
    Reg next = first;
    for (size_t k = 0; k < nodes.size(); k++) {
      if (!live[k]) continue;
      Node m = nodes[k];
      for (auto& i : m.in) i = remap[i];
      for (size_t o = 0; o < m.shapes.size(); o++) remap[base[k] + o] = next++;
      kept.push_back(std::move(m));
    }
    std::lock_guard<std::mutex> g(mu);
    for (auto& o : outs) o = remap[o];
    nodes = std::move(kept);
    n_regs = next;
  }

  std::vector<mx::array> run(const std::vector<mx::array>& inputs, bool fused) {
    if (!folded) {
      fold();
      rewrite_softmax();
      rewrite_fusion();
      prune();
    }
    if (!fused || nodes.empty() || !fusable(inputs)) return replay(inputs);
    if (!compiled) {
      uintptr_t id = next_fun_id.fetch_add(1);
      compiled = mx::detail::compile(
          [this](const std::vector<mx::array>& in) { return replay(in); }, id, false, {});
      fun_id = id;
    }
    return compiled(inputs);
  }
};

struct Program;

struct Clause {
  std::shared_ptr<Program> pred;  // null for the last clause
  std::vector<int> pred_in;
  std::shared_ptr<Program> body;
  std::vector<int> body_in;
};

struct Step {
  enum Kind { TAPE, WHILE, COND } kind;
  std::shared_ptr<Tape> tape;
  std::shared_ptr<Program> cond, body;
  std::vector<Clause> clauses;
  std::vector<int> in, out;
};

// The shape and dtype of a value: what a program's inputs and outputs must have. Replaying
// a tape on inputs of other shapes or dtypes would make its kernels read out of bounds, so
// every boundary is checked: program inputs at each run, sub-program signatures when a
// while or cond step is added.
struct Sig {
  mx::Shape shape;
  mx::Dtype dtype;
  bool operator==(const Sig& o) const { return shape == o.shape && dtype == o.dtype; }
  bool operator!=(const Sig& o) const { return !(*this == o); }
  static Sig of(const mx::array& a) { return {a.shape(), a.dtype()}; }
  std::string str() const {
    std::ostringstream os;
    os << dtype << "[";
    for (size_t i = 0; i < shape.size(); i++) os << (i ? "," : "") << shape[i];
    os << "]";
    return os.str();
  }
};

struct Program {
  std::vector<Sig> in_sigs, out_sigs;
  // Wall time of the last top-level run: replay (graph building, control flow included)
  // and the final evaluation, in nanoseconds.
  std::atomic<int64_t> last_replay_ns{0}, last_eval_ns{0};
  int n_slots = 0;
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::vector<Step> steps;
};

// A predicate as a bool array, converted on the stream that computes it (a GPU worker's
// default stream may be its CPU stream).
mx::array as_bool(const mx::array& p) {
  if (p.dtype() == mx::bool_) return p;
  if (p.has_primitive()) return mx::astype(p, mx::bool_, p.primitive().stream());
  return mx::astype(p, mx::bool_);
}

bool truthy(const mx::array& p) {
  if (p.size() != 1) throw std::invalid_argument("control-flow predicate is not a scalar");
  auto b = as_bool(p);
  mx::eval({b});
  return b.item<bool>();
}

std::vector<mx::array> run(Program& p, const std::vector<mx::array>& inputs, bool fused);

std::vector<mx::array> gather(const std::vector<std::optional<mx::array>>& slots,
                              const std::vector<int>& idx) {
  std::vector<mx::array> v;
  v.reserve(idx.size());
  for (int i : idx) {
    if (!slots[i]) throw std::logic_error("program slot " + std::to_string(i) + " read before written");
    v.push_back(*slots[i]);
  }
  return v;
}

void scatter(std::vector<std::optional<mx::array>>& slots, const std::vector<int>& idx,
             std::vector<mx::array>&& values) {
  if (values.size() != idx.size()) throw std::logic_error("program step produced a wrong number of values");
  for (size_t i = 0; i < idx.size(); i++) slots[idx[i]] = std::move(values[i]);
}

std::vector<mx::array> run(Program& p, const std::vector<mx::array>& inputs, bool fused) {
  if (inputs.size() != p.inputs.size())
    throw std::invalid_argument("program expects " + std::to_string(p.inputs.size()) + " inputs, got " +
                                std::to_string(inputs.size()));
  std::vector<std::optional<mx::array>> slots(p.n_slots);
  for (size_t i = 0; i < inputs.size(); i++) slots[p.inputs[i]] = inputs[i];
  for (auto& st : p.steps) {
    switch (st.kind) {
      case Step::TAPE:
        scatter(slots, st.out, st.tape->run(gather(slots, st.in), fused));
        break;
      case Step::WHILE: {
        auto state = gather(slots, st.in);
        while (true) {
          auto pred = run(*st.cond, state, fused).at(0);
          if (pred.size() != 1) throw std::invalid_argument("while: the predicate is not a scalar");
          auto b = as_bool(pred);
          // One evaluation per iteration: the state and the next predicate together, so
          // the graph never grows across iterations.
          std::vector<mx::array> ev = state;
          ev.push_back(b);
          mx::eval(ev);
          if (!b.item<bool>()) break;
          state = run(*st.body, state, fused);
        }
        scatter(slots, st.out, std::move(state));
        break;
      }
      case Step::COND: {
        bool done = false;
        for (auto& c : st.clauses) {
          if (c.pred && !truthy(run(*c.pred, gather(slots, c.pred_in), fused).at(0))) continue;
          scatter(slots, st.out, run(*c.body, gather(slots, c.body_in), fused));
          done = true;
          break;
        }
        if (!done) throw std::logic_error("cond without a last clause");
        break;
      }
    }
  }
  return gather(slots, p.outputs);
}

// ---- capture ----

struct Builder {
  std::shared_ptr<Program> prog = std::make_shared<Program>();
  std::unordered_map<uintptr_t, int> slot_of;
  // Arrays computed inside earlier tapes: id -> (step, register). Exported as extra tape
  // outputs (new slots) when a later tape needs them, instead of being recomputed.
  std::unordered_map<uintptr_t, std::pair<size_t, Reg>> in_tape;
  // Every array whose id is a key above stays alive while the builder does (ids are
  // addresses).
  std::vector<mx::array> keep;
  bool finished = false;

  std::vector<Sig> slot_sigs;

  int new_slot(const mx::array& a, bool bind) {
    int s = prog->n_slots++;
    if (bind) slot_of.emplace(a.id(), s);
    keep.push_back(a);
    slot_sigs.push_back(Sig::of(a));
    return s;
  }

  std::vector<Sig> sigs(const std::vector<int>& slots) const {
    std::vector<Sig> v;
    for (int i : slots) v.push_back(slot_sigs[i]);
    return v;
  }

  int export_from_tape(const mx::array& a) {
    auto it = in_tape.find(a.id());
    auto [step, reg] = it->second;
    auto& st = prog->steps[step];
    st.tape->outs.push_back(reg);
    int s = new_slot(a, true);
    st.out.push_back(s);
    in_tape.erase(it);
    return s;
  }

  // Captures the graph behind `arrays` into a tape step (unless each already has a slot)
  // and returns their slots.
  std::vector<int> materialize(const std::vector<mx::array>& arrays) {
    std::vector<int> result(arrays.size(), -1);
    auto tape = std::make_shared<Tape>();
    std::vector<int> tape_in;                    // slots read, by input register
    std::vector<mx::Shape> in_shapes;            // and their shapes and dtypes
    std::vector<mx::Dtype> in_dtypes;
    std::unordered_map<int, Reg> in_reg;         // slot -> input register
    std::unordered_map<uintptr_t, Reg> local;    // array id -> register (consts, nodes)
    std::vector<mx::array> const_list;
    struct Pending {
      mx::array a;
      size_t next;
    };
    // Registers are assigned after the walk (inputs first, then constants, then nodes); while
    // walking, nodes refer to values by a provisional "value id".
    enum VKind : uint8_t { VIN, VCONST, VNODE };
    struct VRef {
      VKind k;
      uint32_t i;    // input index, const index, or node index
      uint32_t pos;  // output position for nodes
    };
    std::unordered_map<uintptr_t, VRef> seen;
    std::unordered_map<std::string, VRef> small_consts;
    std::vector<std::vector<VRef>> node_ins;
    std::vector<mx::array> node_arrays;  // one representative (the DFS array) per node

    auto known = [&](const mx::array& a) -> std::optional<VRef> {
      if (auto it = seen.find(a.id()); it != seen.end()) return it->second;
      int slot = -1;
      if (auto it = slot_of.find(a.id()); it != slot_of.end()) {
        slot = it->second;
      } else if (in_tape.count(a.id())) {
        slot = export_from_tape(a);
      }
      if (slot >= 0) {
        auto [it, inserted] = in_reg.emplace(slot, static_cast<Reg>(tape_in.size()));
        if (inserted) {
          tape_in.push_back(slot);
          in_shapes.push_back(a.shape());
          in_dtypes.push_back(a.dtype());
        }
        VRef r{VIN, it->second, 0};
        seen.emplace(a.id(), r);
        return r;
      }
      if (!a.has_primitive() || a.status() != mx::array::Status::unscheduled) {
        if (!a.has_primitive() && a.status() == mx::array::Status::unscheduled)
          throw std::invalid_argument(
              "program capture reached a placeholder that is not an input of this program (a "
              "value from another scope)");
        // Small constants with equal contents are one (the backend uploads a scalar for each
        // use of a number), which lets equal nodes built on them merge below.
        std::string key;
        if (a.is_available() && a.size() <= 16 && a.flags().row_contiguous) {
          key.assign(reinterpret_cast<const char*>(a.data<char>()), a.nbytes());
          key += '|';
          key += std::to_string(from_dtype(a.dtype()));
          for (auto d : a.shape()) key += "," + std::to_string(d);
          if (auto it = small_consts.find(key); it != small_consts.end()) {
            seen.emplace(a.id(), it->second);
            keep.push_back(a);
            return it->second;
          }
        }
        VRef r{VCONST, static_cast<uint32_t>(const_list.size()), 0};
        const_list.push_back(a);
        keep.push_back(a);
        seen.emplace(a.id(), r);
        if (!key.empty()) small_consts.emplace(std::move(key), r);
        return r;
      }
      return std::nullopt;
    };

    // Common subexpressions: a node whose primitive is equivalent to an earlier one's
    // (Primitive::is_equivalent; false unless a primitive says otherwise) on the same inputs
    // is that node.
    std::unordered_multimap<size_t, uint32_t> cse;
    auto same_refs = [](const std::vector<VRef>& x, const std::vector<VRef>& y) {
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); i++)
        if (x[i].k != y[i].k || x[i].i != y[i].i || x[i].pos != y[i].pos) return false;
      return true;
    };
    auto find_equal = [&](const mx::array& a, const std::vector<VRef>& refs, size_t h) -> int64_t {
      auto range = cse.equal_range(h);
      for (auto it = range.first; it != range.second; ++it) {
        uint32_t m = it->second;
        auto& b = node_arrays[m];
        if (!same_refs(node_ins[m], refs)) continue;
        if (typeid(a.primitive()) != typeid(b.primitive())) continue;
        if (!a.primitive().is_equivalent(b.primitive())) continue;
        auto ao = a.outputs(), bo = b.outputs();
        if (ao.size() != bo.size()) continue;
        bool same = true;
        for (size_t i = 0; i < ao.size(); i++)
          same = same && ao[i].shape() == bo[i].shape() && ao[i].dtype() == bo[i].dtype();
        if (same) return m;
      }
      return -1;
    };

    std::vector<Pending> stack;
    for (auto& root : arrays) {
      if (known(root)) continue;
      stack.push_back({root, 0});
      while (!stack.empty()) {
        auto& top = stack.back();
        if (seen.count(top.a.id())) {
          stack.pop_back();
          continue;
        }
        auto& ins = top.a.inputs();
        bool pushed = false;
        while (top.next < ins.size()) {
          auto& in = ins[top.next++];
          if (!known(in)) {
            stack.push_back({in, 0});
            pushed = true;
            break;
          }
        }
        if (pushed) continue;
        // All inputs known: record the node and all its outputs.
        mx::array a = top.a;
        stack.pop_back();
        std::vector<VRef> refs;
        refs.reserve(a.inputs().size());
        for (auto& in : a.inputs()) refs.push_back(seen.at(in.id()));
        size_t h = typeid(a.primitive()).hash_code();
        for (auto& r : refs)
          h = (h * 1000003) ^ ((static_cast<size_t>(r.k) << 56) ^ (static_cast<size_t>(r.i) << 8) ^ r.pos);
        if (int64_t m = find_equal(a, refs, h); m >= 0) {
          auto outs = a.outputs();
          for (uint32_t pos = 0; pos < outs.size(); pos++) {
            seen.emplace(outs[pos].id(), VRef{VNODE, static_cast<uint32_t>(m), pos});
            keep.push_back(outs[pos]);
          }
          continue;
        }
        uint32_t n = static_cast<uint32_t>(node_ins.size());
        cse.emplace(h, n);
        node_ins.push_back(std::move(refs));
        node_arrays.push_back(a);
        auto outs = a.outputs();
        for (uint32_t pos = 0; pos < outs.size(); pos++) {
          seen.emplace(outs[pos].id(), VRef{VNODE, n, pos});
          keep.push_back(outs[pos]);
        }
      }
    }

    // Results that already had slots need no tape.
    bool any_new = false;
    for (size_t i = 0; i < arrays.size(); i++) {
      auto r = seen.at(arrays[i].id());
      if (r.k == VIN) {
        result[i] = tape_in[r.i];
      } else {
        any_new = true;
      }
    }
    if (!any_new) return result;

    // Assign registers.
    tape->n_in = static_cast<uint32_t>(tape_in.size());
    tape->in_shapes = in_shapes;
    tape->in_dtypes = in_dtypes;
    tape->consts = const_list;
    std::vector<Reg> node_base(node_arrays.size());
    Reg next = tape->n_in + static_cast<Reg>(const_list.size());
    for (size_t n = 0; n < node_arrays.size(); n++) {
      node_base[n] = next;
      auto outs = node_arrays[n].outputs();
      next += static_cast<Reg>(outs.size());
    }
    tape->n_regs = next;
    auto reg_of = [&](const VRef& r) -> Reg {
      switch (r.k) {
        case VIN: return r.i;
        case VCONST: return tape->n_in + r.i;
        default: return node_base[r.i] + r.pos;
      }
    };
    tape->nodes.reserve(node_arrays.size());
    for (size_t n = 0; n < node_arrays.size(); n++) {
      auto& a = node_arrays[n];
      Node node;
      node.prim = a.primitive_ptr();
      for (auto& r : node_ins[n]) node.in.push_back(reg_of(r));
      for (auto& o : a.outputs()) {
        node.shapes.push_back(o.shape());
        node.dtypes.push_back(o.dtype());
      }
      tape->nodes.push_back(std::move(node));
    }

    Step st;
    st.kind = Step::TAPE;
    st.tape = tape;
    st.in = tape_in;
    size_t step_index = prog->steps.size();
    for (size_t i = 0; i < arrays.size(); i++) {
      if (result[i] >= 0) continue;
      auto& a = arrays[i];
      if (auto it = slot_of.find(a.id()); it != slot_of.end()) {  // duplicate in `arrays`
        result[i] = it->second;
        continue;
      }
      tape->outs.push_back(reg_of(seen.at(a.id())));
      int s = new_slot(a, true);
      st.out.push_back(s);
      result[i] = s;
    }
    // Remember every node output of this tape for later export.
    for (size_t n = 0; n < node_arrays.size(); n++) {
      auto outs = node_arrays[n].outputs();
      for (uint32_t pos = 0; pos < outs.size(); pos++) {
        if (!slot_of.count(outs[pos].id()))
          in_tape.emplace(outs[pos].id(), std::make_pair(step_index, node_base[n] + pos));
      }
    }
    prog->steps.push_back(std::move(st));
    return result;
  }
};

}  // namespace emily::program

using namespace emily;
using namespace emily::program;

struct emily_builder {
  Builder b;
};

struct emily_program {
  std::shared_ptr<Program> p;
};

namespace {

void check_open(const emily_builder* b) {
  if (b->b.finished) throw std::invalid_argument("program builder already finished");
}

std::vector<int> slots_of(emily_ints v, const Builder& b) {
  std::vector<int> out;
  out.reserve(v.len);
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < 0 || v.ptr[i] >= b.prog->n_slots)
      throw std::invalid_argument("program slot " + std::to_string(v.ptr[i]) + " out of range");
    out.push_back(static_cast<int>(v.ptr[i]));
  }
  return out;
}

std::string sigs_str(const std::vector<Sig>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + v[i].str();
  return s + ")";
}

void check_sigs(const char* what, const std::vector<Sig>& got, const std::vector<Sig>& want) {
  if (got != want)
    throw std::invalid_argument(std::string(what) + ": got " + sigs_str(got) + ", expected " + sigs_str(want));
}

std::vector<Sig> sigs_of(emily_arrays outs) {
  std::vector<Sig> v;
  for (size_t i = 0; i < outs.len; i++) v.push_back(Sig::of(outs.ptr[i]->a));
  return v;
}

// Slots written by a control-flow step: fresh placeholders of the caller, bound to them.
std::vector<int> define(Builder& b, emily_arrays outs) {
  std::vector<int> s;
  for (size_t i = 0; i < outs.len; i++) {
    auto& a = outs.ptr[i]->a;
    if (a.has_primitive() || a.status() != mx::array::Status::unscheduled)
      throw std::invalid_argument("control-flow outputs must be placeholders");
    if (b.slot_of.count(a.id())) throw std::invalid_argument("placeholder defined twice");
    s.push_back(b.new_slot(a, true));
  }
  return s;
}

}  // namespace

namespace {
// Calls `f` with every step of `p`, sub-programs included.
template <typename F>
void for_each_step(const Program& p, F f) {
  std::vector<const Program*> todo{&p};
  while (!todo.empty()) {
    auto* q = todo.back();
    todo.pop_back();
    for (auto& st : q->steps) {
      f(st);
      if (st.kind == Step::WHILE) {
        todo.push_back(st.cond.get());
        todo.push_back(st.body.get());
      } else if (st.kind == Step::COND) {
        for (auto& c : st.clauses) {
          if (c.pred) todo.push_back(c.pred.get());
          todo.push_back(c.body.get());
        }
      }
    }
  }
}

// Calls `f` with every node of `p`, sub-programs included.
template <typename F>
void for_each_node(const Program& p, F f) {
  for_each_step(p, [&](const Step& st) {
    if (st.kind != Step::TAPE) return;
    std::lock_guard<std::mutex> g(st.tape->mu);
    for (auto& n : st.tape->nodes) f(n);
  });
}
}  // namespace

extern "C" {

EMILY_API int emily_placeholder(emily_ints shp, int32_t dtype, emily_array** out) {
  EMILY_GUARD({
    for (size_t i = 0; i < shp.len; i++)
      if (shp.ptr[i] < 0 || shp.ptr[i] > INT32_MAX)
        throw std::invalid_argument("dimension " + std::to_string(shp.ptr[i]) + " out of range");
    auto s = shape(shp);
    put(out, mx::array(std::move(s), to_dtype(dtype), nullptr, {}));
  })
}

EMILY_API int emily_is_placeholder(const emily_array* a) {
  return !a->a.has_primitive() && a->a.status() == mx::array::Status::unscheduled ? 1 : 0;
}

EMILY_API int emily_builder_new(emily_builder** out) { EMILY_GUARD(*out = new emily_builder{}) }

EMILY_API void emily_builder_free(emily_builder* b) { delete b; }

// Declares program inputs (in order): each array is a boundary of the capture.
EMILY_API int emily_builder_inputs(emily_builder* b, emily_arrays xs, int64_t* slots) {
  EMILY_GUARD({
    check_open(b);
    for (size_t i = 0; i < xs.len; i++) {
      auto& a = xs.ptr[i]->a;
      bool bind = !b->b.slot_of.count(a.id());
      // The same array given twice: the second input gets a slot of its own, never read.
      int s = b->b.new_slot(a, bind);
      b->b.prog->inputs.push_back(s);
      slots[i] = s;
    }
  })
}

EMILY_API int emily_builder_materialize(emily_builder* b, emily_arrays xs, int64_t* slots) {
  EMILY_GUARD({
    check_open(b);
    auto v = arrays(xs);
    auto s = b->b.materialize(v);
    for (size_t i = 0; i < s.size(); i++) slots[i] = s[i];
  })
}

EMILY_API int emily_builder_while(emily_builder* b, const emily_program* cond, const emily_program* body,
                                  emily_ints state, emily_arrays outs) {
  EMILY_GUARD({
    check_open(b);
    auto in = slots_of(state, b->b);
    auto state_sigs = b->b.sigs(in);
    check_sigs("while: condition inputs", cond->p->in_sigs, state_sigs);
    check_sigs("while: body inputs", body->p->in_sigs, state_sigs);
    check_sigs("while: body outputs", body->p->out_sigs, state_sigs);
    check_sigs("while: outputs", sigs_of(outs), state_sigs);
    if (cond->p->out_sigs.size() != 1 || cond->p->out_sigs[0].shape.size() != 0)
      throw std::invalid_argument("while: the condition must return one scalar");
    Step st;
    st.kind = Step::WHILE;
    st.cond = cond->p;
    st.body = body->p;
    st.in = std::move(in);
    st.out = define(b->b, outs);
    b->b.prog->steps.push_back(std::move(st));
  })
}

// Clauses in order; the last has no predicate (preds[n-1] == NULL).
EMILY_API int emily_builder_cond(emily_builder* b, const emily_program* const* preds, const emily_ints* pred_in,
                                 const emily_program* const* bodies, const emily_ints* body_in, size_t n,
                                 emily_arrays outs) {
  EMILY_GUARD({
    check_open(b);
    if (n == 0 || preds[n - 1] != nullptr) throw std::invalid_argument("cond: the last clause has no predicate");
    Step st;
    st.kind = Step::COND;
    for (size_t i = 0; i < n; i++) {
      Clause c;
      if (preds[i]) {
        if (i == n - 1) throw std::invalid_argument("cond: last clause has a predicate");
        c.pred = preds[i]->p;
        c.pred_in = slots_of(pred_in[i], b->b);
        check_sigs("cond: predicate inputs", c.pred->in_sigs, b->b.sigs(c.pred_in));
        if (c.pred->out_sigs.size() != 1 || c.pred->out_sigs[0].shape.size() != 0)
          throw std::invalid_argument("cond: a predicate must return one scalar");
      } else if (i != n - 1) {
        throw std::invalid_argument("cond: only the last clause may lack a predicate");
      }
      c.body = bodies[i]->p;
      c.body_in = slots_of(body_in[i], b->b);
      check_sigs("cond: clause inputs", c.body->in_sigs, b->b.sigs(c.body_in));
      check_sigs("cond: clause outputs", c.body->out_sigs, sigs_of(outs));
      st.clauses.push_back(std::move(c));
    }
    st.out = define(b->b, outs);
    b->b.prog->steps.push_back(std::move(st));
  })
}

EMILY_API int emily_builder_finish(emily_builder* b, emily_arrays outputs, emily_program** out) {
  EMILY_GUARD({
    check_open(b);
    auto v = arrays(outputs);
    auto s = b->b.materialize(v);
    b->b.prog->outputs = std::move(s);
    b->b.prog->in_sigs = b->b.sigs(b->b.prog->inputs);
    b->b.prog->out_sigs = b->b.sigs(b->b.prog->outputs);
    b->b.finished = true;
    *out = new emily_program{b->b.prog};
    // The trace graph is no longer needed.
    b->b.keep.clear();
    b->b.slot_of.clear();
    b->b.in_tape.clear();
  })
}

EMILY_API void emily_program_free(emily_program* p) { delete p; }


// The first stream of a node of `p` (sub-programs included) not among `own`, or -1: a
// program replays on one worker's thread, so every node must be on that worker's streams.
EMILY_API int32_t emily_program_foreign_stream(const emily_program* p, const int32_t* own, size_t n_own) {
  int32_t found = -1;
  for_each_node(*p->p, [&](const Node& n) {
    int32_t idx = n.prim->stream().index;
    if (found >= 0 || std::find(own, own + n_own, idx) != own + n_own) return;
    found = idx;
  });
  return found;
}

// The primitive names of every node (sub-programs included), separated by spaces, into
// `buf` (at most `cap` bytes, NUL-terminated); returns the length needed.
EMILY_API size_t emily_program_describe(const emily_program* p, char* buf, size_t cap) {
  std::string s;
  for_each_node(*p->p, [&](const Node& n) {
    if (!s.empty()) s += ' ';
    s += n.prim->name();
  });
  if (cap > 0) {
    size_t n = std::min(cap - 1, s.size());
    std::memcpy(buf, s.data(), n);
    buf[n] = 0;
  }
  return s.size() + 1;
}

EMILY_API size_t emily_program_n_inputs(const emily_program* p) { return p->p->inputs.size(); }
EMILY_API size_t emily_program_n_outputs(const emily_program* p) { return p->p->outputs.size(); }

// Counts over the program and its sub-programs: steps, tapes, nodes, constants, whiles, conds;
// then the last run's replay and evaluation times (ns); then the nodes whose cost does not
// follow from their sizes (heavy_primitive: factorizations, sorts, FFTs, ...).
EMILY_API void emily_program_stats(const emily_program* p, int64_t* out) {
  for (int i = 0; i < 6; i++) out[i] = 0;
  out[6] = p->p->last_replay_ns;
  out[7] = p->p->last_eval_ns;
  out[8] = 0;
  for_each_node(*p->p, [&](const Node& n) {
    if (heavy_primitive(n.prim->name())) out[8]++;
  });
  for_each_step(*p->p, [&](const Step& st) {
    out[0]++;
    switch (st.kind) {
      case Step::TAPE: {
        out[1]++;
        auto [n, c] = st.tape->sizes();
        out[2] += static_cast<int64_t>(n);
        out[3] += static_cast<int64_t>(c);
        break;
      }
      case Step::WHILE:
        out[4]++;
        break;
      case Step::COND:
        out[5]++;
        break;
    }
  });
}

// Replays the program on `inputs` and evaluates the outputs. Must run on the thread that owns
// the stream the program was captured with. `outs` has room for emily_program_n_outputs().
EMILY_API int emily_program_run(emily_program* p, emily_arrays inputs, int32_t fused, emily_array** outs) {
  EMILY_GUARD({
    EvalGuard table(stream_table_lock());
    auto in = arrays(inputs);
    if (in.size() != p->p->in_sigs.size())
      throw std::invalid_argument("program expects " + std::to_string(p->p->in_sigs.size()) + " inputs, got " +
                                  std::to_string(in.size()));
    std::vector<Sig> got;
    for (auto& a : in) got.push_back(Sig::of(a));
    check_sigs("program inputs", got, p->p->in_sigs);
    auto t0 = std::chrono::steady_clock::now();
    auto res = run(*p->p, in, fused != 0);
    auto t1 = std::chrono::steady_clock::now();
    // (eval_awake: a run may happen in a caller standing in for the worker, and outputs
    // may all be evaluated already, e.g. a program returning its input)
    eval_awake(res);
    auto t2 = std::chrono::steady_clock::now();
    p->p->last_replay_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    p->p->last_eval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t1).count();
    for (size_t i = 0; i < res.size(); i++) outs[i] = new emily_array{std::move(res[i])};
  })
}

}  // extern "C"
