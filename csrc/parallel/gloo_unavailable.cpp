// Built when CMake did not find gloo (Debian's libgloo-dev): CPU ranks cannot communicate.
#include "llama4/communicator.h"

namespace llama4 {

bool gloo_available() { return false; }

std::shared_ptr<Communicator> make_gloo_communicator(std::shared_ptr<Store>, const CommOptions&) {
  throw ValueError(
      "this build of llama4_native has no gloo (CPU collectives): install Debian's libgloo-dev and "
      "rebuild to run several CPU ranks");
}

}  // namespace llama4
