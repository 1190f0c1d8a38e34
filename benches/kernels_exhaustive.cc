// Every float32 through Emily's unary CPU kernels (src/cpp/kernels), for each ISA this CPU
// has, against the C library's double-precision function rounded to float: prints the worst
// distance in ulp per op and where it is, and the count of results more than 1 ulp away.
// NaN must give NaN. Built and run by benches/kernels_exhaustive.sh.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernels/kernels.hpp"

using emily::kernels::Isa;
using emily::kernels::UnaryOp;

namespace {

struct Op {
  const char* name;
  UnaryOp op;
  double (*ref)(double);
};

const Op ops[] = {
    {"exp", UnaryOp::exp, [](double x) { return std::exp(x); }},
    {"expm1", UnaryOp::expm1, [](double x) { return std::expm1(x); }},
    {"log", UnaryOp::log, [](double x) { return std::log(x); }},
    {"log1p", UnaryOp::log1p, [](double x) { return std::log1p(x); }},
    {"sin", UnaryOp::sin, [](double x) { return std::sin(x); }},
    {"cos", UnaryOp::cos, [](double x) { return std::cos(x); }},
    {"tanh", UnaryOp::tanh, [](double x) { return std::tanh(x); }},
    {"sigmoid", UnaryOp::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }},
    {"erf", UnaryOp::erf, [](double x) { return std::erf(x); }},
    {"sqrt", UnaryOp::sqrt, [](double x) { return std::sqrt(x); }},
    {"rsqrt", UnaryOp::rsqrt, [](double x) { return 1.0 / std::sqrt(x); }},
};

// Floats as a line of integers where neighbours differ by 1 (-0.0 and +0.0 are one apart).
int64_t ordered(float f) {
  int32_t i;
  std::memcpy(&i, &f, 4);
  return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) - 1 : i;
}

struct Worst {
  int64_t ulp = 0;
  float at = 0, got = 0, want = 0;
  uint64_t over1 = 0;
};

Worst scan(const Isa& isa, const Op& op, uint64_t lo, uint64_t hi) {
  constexpr size_t chunk = 1 << 16;
  std::vector<float> in(chunk), out(chunk);
  Worst w;
  for (uint64_t base = lo; base < hi; base += chunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, hi - base));
    for (size_t j = 0; j < n; j++) {
      uint32_t b = static_cast<uint32_t>(base + j);
      std::memcpy(&in[j], &b, 4);
    }
    isa.unary(op.op, in.data(), out.data(), n);
    for (size_t j = 0; j < n; j++) {
      float want = static_cast<float>(op.ref(static_cast<double>(in[j])));
      float got = out[j];
      int64_t d;
      if (std::isnan(want) || std::isnan(got))
        d = std::isnan(want) && std::isnan(got) ? 0 : INT64_MAX;
      else
        d = std::llabs(ordered(got) - ordered(want));
      if (d > 1) w.over1++;
      if (d > w.ulp) w = {d, in[j], got, want, w.over1};
    }
  }
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const Isa*> isas;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) isas.push_back(&emily::kernels::avx512::isa);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back(&emily::kernels::avx2::isa);
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::printf("| op | isa | worst ulp | at x | got | C library | results > 1 ulp |\n|---|---|---|---|---|---|---|\n");
  for (const Op& op : ops) {
    if (argc > 1 && std::find_if(argv + 1, argv + argc, [&](const char* a) { return op.name == std::string(a); }) ==
                        argv + argc)
      continue;
    for (const Isa* isa : isas) {
      std::vector<Worst> parts(threads);
      std::vector<std::thread> pool;
      uint64_t total = uint64_t(1) << 32, step = total / threads;
      for (unsigned t = 0; t < threads; t++)
        pool.emplace_back([&, t] { parts[t] = scan(*isa, op, t * step, t + 1 == threads ? total : (t + 1) * step); });
      for (auto& th : pool) th.join();
      Worst w;
      for (auto& p : parts) {
        w.over1 += p.over1;
        if (p.ulp > w.ulp) w = {p.ulp, p.at, p.got, p.want, w.over1};
      }
      std::printf("| %s | %s | %s | %.9g | %.9g | %.9g | %llu |\n", op.name, isa->name,
                  w.ulp == INT64_MAX ? "NaN mismatch" : std::to_string(w.ulp).c_str(), w.at, w.got, w.want,
                  static_cast<unsigned long long>(w.over1));
      std::fflush(stdout);
    }
  }
}
