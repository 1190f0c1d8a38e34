// Thread placement (threads.cc): what Emily starts takes the process's CPU set.
#pragma once

namespace emily {

// Gives the calling thread the process's CPU set for its lifetime, then restores the set it
// had (threads.cc): threads started meanwhile inherit the process's set, not the one CPU of
// a bound BEAM scheduler.
class ProcessCpus {
 public:
  ProcessCpus();
  ~ProcessCpus();
  ProcessCpus(const ProcessCpus&) = delete;
  ProcessCpus& operator=(const ProcessCpus&) = delete;

 private:
  alignas(8) unsigned char saved_[128];  // a cpu_set_t
  bool changed_ = false;
};
int process_cpu_count();

}  // namespace emily
