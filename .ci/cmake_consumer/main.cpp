// CI: calls the installed library's C++ API and checks the published default
// (50 frames of 24x24 tokens -> 10 * 288 + 50 * 16 = 3680 tokens) against ATen.
#include <ATen/ATen.h>
#include <sfllava_ext/ops/slowfast_pool.h>

#include <iostream>

int main() {
  const at::Tensor x = at::randn({50, 576, 32});
  const at::Tensor tokens = sfllava::slowfast_pool(x, 10, "spatial_1d_max_pool", {4, 4}, {});
  if (tokens.size(0) != 3680 || tokens.size(1) != 32) {
    std::cerr << "unexpected shape " << tokens.sizes() << "\n";
    return 1;
  }
  // Frame 0 is the first slow pick: its 288 tokens are max pairs of its 576.
  const at::Tensor slow0 = std::get<0>(x[0].view({288, 2, 32}).max(1));
  // The last fast token: mean of the bottom-right 6x6 window of frame 49.
  const at::Tensor fast_last = x[49].view({24, 24, 32}).slice(0, 18).slice(1, 18).mean({0, 1});
  if (!at::equal(tokens.slice(0, 0, 288), slow0) ||
      !at::allclose(tokens[3679], fast_last, 1e-6, 1e-6)) {
    std::cerr << "tokens differ from the ATen reference\n";
    return 1;
  }
  at::Tensor embeds = at::zeros({3700, 32});
  sfllava::slowfast_pool_out(x, 10, "spatial_1d_max_pool", {4, 4}, {}, embeds.slice(0, 10, 3690));
  if (!at::equal(embeds.slice(0, 10, 3690), tokens)) {
    std::cerr << "out= differs\n";
    return 1;
  }
  std::cout << "sfllava_ext C++ consumer OK: " << tokens.sizes() << "\n";
  return 0;
}
