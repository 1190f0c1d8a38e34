#include <string_view>

#include "cost.hpp"
#include "cpu_kernels.hpp"
#include "mlx/primitives.h"
#include "shim.hpp"

namespace emily {

namespace {

// What an evaluation will cost, roughly: nodes to run and element-units they touch, where
// an element of an input or of a plain elementwise output is one unit (0.25-1 ns here), an
// element of a transcendental op's output 32 (exp, sin, erf, sigmoid...: 5-17 ns here), and
// a matmul multiply-add 1/64 (256x256x256 in 150-190 us, 2^18 units, inputs included; a
// 2^18-element add took 188 us); `heavy` when a
// node's cost does not follow from its sizes (factorizations, sorts, convolutions, FFTs,
// compiled functions). A graph within kCheapNodes and kCheapElements (some 100-250 us of
// work) may be evaluated by a caller in a BEAM scheduler thread.
constexpr size_t kCheapNodes = 64;
constexpr double kCheapElements = 1 << 18;
constexpr double kTranscendentalUnits = 32;
// Emily's vectorised CPU kernels (cpu_kernels.cc): 1M-element exp in ~0.3 ms, about an
// add's cost.
constexpr double kKernelUnits = 2;
constexpr double kMatmulUnitsPerMac = 1.0 / 64;

bool transcendental_primitive(std::string_view n) {
  static const std::string_view names[] = {
      "Exp",    "Expm1",  "Log",     "Log2",    "Log10",   "Log1p",     "Sin",     "Cos",
      "Tan",    "Sinh",   "Cosh",    "Tanh",    "ArcSin",  "ArcCos",    "ArcTan",  "ArcTan2",
      "ArcSinh", "ArcCosh", "ArcTanh", "Erf",   "ErfInv",  "Sigmoid",   "Power",   "LogAddExp",
      "Softmax", "LogSumExp"};
  for (auto t : names)
    if (n == t) return true;
  return false;
}

}  // namespace

bool heavy_primitive(std::string_view n) {
  static const std::string_view names[] = {
      "Convolution", "FFT",     "Sort",        "ArgSort",     "Partition", "ArgPartition",
      "Cholesky",    "Inverse", "QRF",         "SVD",         "Eig",       "Eigh",
      "LUF",         "Load",    "Hadamard",    "BlockMaskedMM", "GatherMM", "SegmentedMM",
      "QuantizedMatmul", "EmilyQuantizedMatmul", "QQMatmul", "GatherQMM", "GatherQQMM", "CustomKernel", "SearchSorted"};
  for (auto h : names)
    if (n == h) return true;
  return n.rfind("Compiled", 0) == 0;
}

void add_cost(Cost& c, const mx::array& a) {
  c.nodes++;
  std::string_view name = a.primitive().name();
  if (heavy_primitive(name)) c.heavy = true;
  double out = static_cast<double>(a.size());
  if ((name == "Matmul" || name == "AddMM") && !a.inputs().empty() && a.inputs()[0].ndim() > 0) {
    // its multiply-adds (reading the inputs is part of them)
    c.elements += out * static_cast<double>(a.inputs()[0].shape(-1)) * kMatmulUnitsPerMac;
    return;
  }
  if (kernels::is_kernel(a.primitive()))
    out *= kKernelUnits;
  else if (transcendental_primitive(name))
    out *= kTranscendentalUnits;
  c.elements += out;
  for (const auto& in : a.inputs()) c.elements += static_cast<double>(in.size());
}

bool is_cheap(const Cost& c) { return !c.heavy && c.nodes <= kCheapNodes && c.elements <= kCheapElements; }

}  // namespace emily
