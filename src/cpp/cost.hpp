// The inline-evaluation cost model (cost.cc): whether a graph is cheap enough for a caller
// to evaluate in a BEAM scheduler thread instead of queueing it to the worker.
#pragma once
#include <cstddef>

#include "mlx/array.h"

namespace emily {

struct Cost {
  size_t nodes = 0;
  double elements = 0;
  bool heavy = false;
};

// Adds node `a` (not yet evaluated) to `c`.
void add_cost(Cost& c, const mlx::core::array& a);

// Within the cheap limits: no heavy node, at most kCheapNodes nodes and kCheapElements units.
bool is_cheap(const Cost& c);

}  // namespace emily
