// Native CPU kernels for ViP on channels-last (NHWC) maps, registered as torch.ops.vip_perception.*
//
// Both are memory-bound, so the win is one pass over the data with contiguous channel vectors:
//   upsample_cl(x, H, W): the exact ViP interpolation (even positions copy, odd ones average
//     two or four neighbours, a last row/column without a next neighbour copies);
//   max_pool_cl(x, H, W): max_pool2d(2, 2) of that interpolation, read from the small map only.
// Plain-PyTorch references: vip_perception/vip/upsample.py (vip_upsample) and
// vip_perception/fused/pool_fusion.py (vip_max_pool2d); test/test_fused_native.py compares them.
// Arithmetic mirrors the references: averages as (a + b) * 0.5, the diagonal as the average
// of the two row averages, so results match them bit for bit on ordinary (non-subnormal) values.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

namespace {

void check_sizes(const at::Tensor& x, int64_t H, int64_t W, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": expected (N, C, h, w), got ", x.dim(), " dims");
  TORCH_CHECK(x.device().is_cpu(), op, ": CPU tensors only");
  const int64_t h = x.size(2), w = x.size(3);
  TORCH_CHECK(h >= 1 && (H == 2 * h - 1 || H == 2 * h), op, ": cannot expand height ", h, " to ", H);
  TORCH_CHECK(w >= 1 && (W == 2 * w - 1 || W == 2 * w), op, ": cannot expand width ", w, " to ", W);
}

// Along one axis: the two small-map indices averaged for full index i (equal when copied).
inline void sources(int64_t i, int64_t small, int64_t& a, int64_t& b) {
  a = i / 2;
  b = ((i & 1) && a + 1 < small) ? a + 1 : a;
}

template <typename T>
void upsample_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t N, int64_t C, int64_t h,
                     int64_t w, int64_t H, int64_t W) {
  at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t n = idx / H, i = idx % H;
      int64_t r0, r1;
      sources(i, h, r0, r1);
      const T* s0 = src + (n * h + r0) * w * C;
      const T* s1 = src + (n * h + r1) * w * C;
      T* __restrict__ d = dst + (n * H + i) * W * C;
      for (int64_t j = 0; j < W; ++j, d += C) {
        int64_t c0, c1;
        sources(j, w, c0, c1);
        const T* __restrict__ a = s0 + c0 * C;
        const T* __restrict__ b = s0 + c1 * C;
        const T* __restrict__ c = s1 + c0 * C;
        const T* __restrict__ e = s1 + c1 * C;
        if (r0 == r1 && c0 == c1) {
          std::memcpy(d, a, C * sizeof(T));
        } else if (r0 == r1) {
          for (int64_t k = 0; k < C; ++k) d[k] = (a[k] + b[k]) * T(0.5);
        } else if (c0 == c1) {
          for (int64_t k = 0; k < C; ++k) d[k] = (a[k] + c[k]) * T(0.5);
        } else {
          for (int64_t k = 0; k < C; ++k) d[k] = ((a[k] + b[k]) * T(0.5) + (c[k] + e[k]) * T(0.5)) * T(0.5);
        }
      }
    }
  });
}

template <typename T>
void max_pool_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t N, int64_t C, int64_t h,
                     int64_t w, int64_t Hp, int64_t Wp) {
  at::parallel_for(0, N * Hp, 1, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t n = idx / Hp, i = idx % Hp;
      const int64_t i1 = std::min(i + 1, h - 1);  // copied last row: avg(v, v) == v
      const T* s0 = src + (n * h + i) * w * C;
      const T* s1 = src + (n * h + i1) * w * C;
      T* __restrict__ d = dst + (n * Hp + i) * Wp * C;
      for (int64_t j = 0; j < Wp; ++j, d += C) {
        const int64_t j1 = std::min(j + 1, w - 1);
        const T* __restrict__ a = s0 + j * C;
        const T* __restrict__ b = s0 + j1 * C;
        const T* __restrict__ c = s1 + j * C;
        const T* __restrict__ e = s1 + j1 * C;
        for (int64_t k = 0; k < C; ++k) {
          const T top_r = (a[k] + b[k]) * T(0.5);       // (2i, 2j+1)
          const T bot_l = (a[k] + c[k]) * T(0.5);       // (2i+1, 2j)
          const T bot_r = (bot_l + (b[k] + e[k]) * T(0.5)) * T(0.5);  // (2i+1, 2j+1)
          d[k] = std::max(std::max(a[k], top_r), std::max(bot_l, bot_r));
        }
      }
    }
  });
}

at::Tensor upsample_cl(const at::Tensor& x, int64_t H, int64_t W) {
  check_sizes(x, H, W, "vip_perception::upsample_cl");
  const auto in = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t N = in.size(0), C = in.size(1), h = in.size(2), w = in.size(3);
  auto out = at::empty({N, C, H, W}, in.options().memory_format(at::MemoryFormat::ChannelsLast));
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "upsample_cl", [&] {
    upsample_kernel<scalar_t>(in.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, C, h, w, H, W);
  });
  return out;
}

at::Tensor max_pool_cl(const at::Tensor& x, int64_t H, int64_t W) {
  check_sizes(x, H, W, "vip_perception::max_pool_cl");
  TORCH_CHECK(H >= 2 && W >= 2, "vip_perception::max_pool_cl: full size smaller than the 2x2 window");
  const auto in = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t N = in.size(0), C = in.size(1), h = in.size(2), w = in.size(3);
  const int64_t Hp = H / 2, Wp = W / 2;
  auto out = at::empty({N, C, Hp, Wp}, in.options().memory_format(at::MemoryFormat::ChannelsLast));
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "max_pool_cl", [&] {
    max_pool_kernel<scalar_t>(in.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, C, h, w, Hp, Wp);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(vip_perception, m) {
  m.def("upsample_cl(Tensor x, int H, int W) -> Tensor");
  m.def("max_pool_cl(Tensor x, int H, int W) -> Tensor");
}

TORCH_LIBRARY_IMPL(vip_perception, CPU, m) {
  m.impl("upsample_cl", &upsample_cl);
  m.impl("max_pool_cl", &max_pool_cl);
}
