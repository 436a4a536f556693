// TensorView / Tensor (llama4/tensor.h): shapes, strides, contiguity, reshape / slice0 / select0,
// owning tensors, and the messages of the errors they raise (each names the values involved).
#include <cstdint>
#include <vector>

#include "check.h"
#include "llama4/error.h"
#include "llama4/ops.h"
#include "llama4/tensor.h"

using namespace llama4;
static const Context cpu;  // the ops run on the CPU here

static char* byte_offset(void* p, int64_t elements, DType t) {
  return static_cast<char*>(p) + elements * int64_t(element_size(t));
}

TEST_CASE(contiguous_view_layout) {
  std::vector<float> buf(24);
  TensorView v(buf.data(), DType::F32, {2, 3, 4});
  CHECK_EQ(v.ndim, 3);
  CHECK_EQ(v.stride(0), 12);
  CHECK_EQ(v.stride(1), 4);
  CHECK_EQ(v.stride(-1), 1);
  CHECK_EQ(v.size(-1), 4);
  CHECK_EQ(v.size(-3), 2);
  CHECK_EQ(v.numel(), 24);
  CHECK_EQ(v.nbytes(), size_t(96));
  CHECK_EQ(v.shape_str(), std::string("[2, 3, 4]"));
  CHECK(v.is_contiguous());
  CHECK(v.sizes() == (Shape{2, 3, 4}));
  CHECK_EQ(TensorView(nullptr, DType::BF16, {5, 3}).nbytes(), size_t(30));
  CHECK_EQ(TensorView(nullptr, DType::F8E4M3, {5, 3}).nbytes(), size_t(15));
  CHECK_EQ(TensorView(nullptr, DType::F32, {}).numel(), 1);  // a 0-d view is one element
  CHECK_EQ(TensorView(nullptr, DType::F32, {4, 0, 2}).numel(), 0);
}

TEST_CASE(contiguity_of_strided_views) {
  CHECK(!TensorView(nullptr, DType::F32, {3, 2}, {1, 3}, Device::cpu()).is_contiguous());  // transposed
  CHECK(!TensorView(nullptr, DType::F32, {3, 2}, {4, 2}, Device::cpu()).is_contiguous());  // every other
  CHECK(TensorView(nullptr, DType::F32, {3, 2}, {2, 1}, Device::cpu()).is_contiguous());
  // Size-1 dimensions do not constrain their stride (as in torch).
  CHECK(TensorView(nullptr, DType::F32, {1, 4}, {99, 1}, Device::cpu()).is_contiguous());
  CHECK(TensorView(nullptr, DType::F32, {4, 1}, {1, 7}, Device::cpu()).is_contiguous());
}

TEST_CASE(construction_errors) {
  CHECK_THROWS(TensorView(nullptr, DType::F32, {2, -1}), ValueError, "negative size -1",
               "dimension 1");
  CHECK_THROWS(TensorView(nullptr, DType::F32, {1, 1, 1, 1, 1, 1, 1}), ValueError,
               "at most 6 dimensions", "got 7");
  CHECK_THROWS(TensorView(nullptr, DType::F32, {2, 3}, {1}, Device::cpu()), ValueError,
               "got 1 strides for 2 dimensions");
  TensorView v(nullptr, DType::F32, {2, 3});
  CHECK_THROWS(v.size(2), ValueError, "dimension 2 out of range for a 2-d tensor");
  CHECK_THROWS(v.stride(-3), ValueError, "dimension -3 out of range for a 2-d tensor");
}

TEST_CASE(reshape) {
  std::vector<float> buf(24);
  TensorView v(buf.data(), DType::F32, {2, 3, 4});
  TensorView r = v.reshape({6, 4});
  CHECK(r.data == v.data);
  CHECK(r.sizes() == (Shape{6, 4}));
  CHECK_EQ(r.stride(0), 4);
  CHECK_EQ(v.reshape({24}).numel(), 24);
  CHECK_THROWS(v.reshape({5, 5}), ValueError, "cannot reshape [2, 3, 4] to [5, 5]");
  TensorView t(buf.data(), DType::F32, {3, 2}, {1, 3}, Device::cpu());
  CHECK_THROWS(t.reshape({6}), ValueError, "reshape needs a contiguous tensor", "[3, 2]");
}

TEST_CASE(slice0) {
  std::vector<float> buf(20);
  TensorView v(buf.data(), DType::F32, {5, 4});
  TensorView s = v.slice0(1, 3);
  CHECK(s.sizes() == (Shape{2, 4}));
  CHECK(s.data == static_cast<void*>(buf.data() + 4));
  CHECK(s.is_contiguous());
  CHECK_EQ(v.slice0(2, 2).numel(), 0);  // empty slices are fine
  CHECK_EQ(v.slice0(0, 5).numel(), 20);
  // A strided view keeps its strides; the offset is in bytes of its dtype.
  TensorView b(buf.data(), DType::BF16, {5, 2}, {4, 2}, Device::cpu());
  TensorView bs = b.slice0(2, 4);
  CHECK(bs.data == static_cast<void*>(byte_offset(buf.data(), 8, DType::BF16)));
  CHECK_EQ(bs.stride(0), 4);
  CHECK_EQ(bs.stride(1), 2);
  CHECK_THROWS(v.slice0(3, 6), ValueError, "slice [3, 6) out of range for dimension 0 of [5, 4]");
  CHECK_THROWS(v.slice0(3, 2), ValueError, "slice [3, 2)");
  CHECK_THROWS(v.slice0(-1, 2), ValueError, "slice [-1, 2)");
  CHECK_THROWS(TensorView(nullptr, DType::F32, {}).slice0(0, 0), ValueError, "out of range");
}

TEST_CASE(select0) {
  std::vector<float> buf(20);
  TensorView v(buf.data(), DType::F32, {5, 4});
  TensorView row = v.select0(2);
  CHECK_EQ(row.ndim, 1);
  CHECK(row.sizes() == (Shape{4}));
  CHECK(row.data == static_cast<void*>(buf.data() + 8));
  // Column-major [4, 5] viewed as its transpose: selecting a row gives a strided vector.
  TensorView t(buf.data(), DType::F32, {5, 4}, {1, 5}, Device::cpu());
  TensorView col = t.select0(3);
  CHECK(col.data == static_cast<void*>(buf.data() + 3));
  CHECK_EQ(col.stride(0), 5);
  CHECK(!col.is_contiguous());
  TensorView scalar = row.select0(1);  // 1-d -> 0-d: one element
  CHECK_EQ(scalar.ndim, 0);
  CHECK_EQ(scalar.numel(), 1);
  CHECK(scalar.data == static_cast<void*>(buf.data() + 9));
  CHECK_THROWS(v.select0(5), ValueError, "index 5 out of range for dimension 0 of [5, 4]");
  CHECK_THROWS(v.select0(-1), ValueError, "index -1 out of range");
}

TEST_CASE(owning_tensors) {
  Tensor z = Tensor::zeros({3, 5}, DType::F32);
  CHECK(z.defined());
  CHECK(z.view().is_contiguous());
  CHECK(reinterpret_cast<uintptr_t>(z.data()) % 64 == 0);  // the CPU allocator aligns to 64 bytes
  bool all_zero = true;
  for (int i = 0; i < 15; ++i) all_zero &= z.ptr<float>()[i] == 0.0f;
  CHECK(all_zero);
  Tensor alias = z;  // copies share the storage
  alias.ptr<float>()[7] = 3.0f;
  CHECK_EQ(z.ptr<float>()[7], 3.0f);
  CHECK(alias.storage() == z.storage());
  CHECK_EQ(z.storage().use_count(), 2L);
  Tensor empty = Tensor::empty({0, 4}, DType::BF16);
  CHECK(empty.defined());
  CHECK_EQ(empty.numel(), 0);
  CHECK(!Tensor().defined());
  std::vector<float> buf(6);
  CHECK_THROWS(memset_zero(TensorView(buf.data(), DType::F32, {3, 2}, {1, 3}, Device::cpu())),
               ValueError, "contiguous");
}

TEST_CASE(strided_copy_and_contiguous) {
  std::vector<float> buf(12);
  for (int i = 0; i < 12; ++i) buf[i] = float(i);
  // [3, 4] row-major seen transposed as [4, 3] with strides [1, 4].
  TensorView t(buf.data(), DType::F32, {4, 3}, {1, 4}, Device::cpu());
  Tensor c = ops::contiguous(cpu, t);
  CHECK(c.view().is_contiguous());
  bool ok = true;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) ok &= c.ptr<float>()[i * 3 + j] == float(j * 4 + i);
  CHECK(ok);
  Tensor dst = Tensor::empty({4, 2}, DType::F32);
  CHECK_THROWS(ops::copy(cpu, dst, t), ValueError, "copy: 'dst' must have shape [4, 3], got [4, 2]");
  Tensor wrong = Tensor::empty({4, 3}, DType::BF16);
  CHECK_THROWS(ops::copy(cpu, wrong, t), TypeError, "copy: 'dst' must have the dtype of 'src'",
               "float32", "bfloat16");
}

TEST_CASE(devices_and_dtypes) {
  CHECK_EQ(Device::cpu().str(), std::string("cpu"));
  CHECK_EQ(Device::cuda(1).str(), std::string("cuda:1"));
  CHECK(Device::cuda(0) != Device::cuda(1));
  CHECK_EQ(element_size(DType::F8E4M3), size_t(1));
  CHECK_EQ(element_size(DType::I64), size_t(8));
  CHECK_EQ(std::string(dtype_name(DType::BF16)), std::string("bfloat16"));
  CHECK_EQ(std::string(dtype_name(DType::F8E4M3)), std::string("float8_e4m3fn"));
  CHECK(is_floating(DType::F8E4M3) && !is_floating(DType::I32));
}

int main() { return check::run_all(); }

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

TEST_CASE(cpu_context_reuses_large_temporaries) {
  // A freed block of 1 MiB or more comes back for the next request of (nearly) the same size,
  // so a step's activations are memory that was touched before; live blocks are never shared.
  void* first = nullptr;
  {
    Tensor a = cpu.empty({(1 << 18) + 100}, DType::F32);  // just over 1 MiB
    first = a.data();
    CHECK_EQ(reinterpret_cast<uintptr_t>(first) % 64, uintptr_t(0));
  }
  Tensor b = cpu.empty({(1 << 18) + 95}, DType::F32);  // rounds to the same size
  if (!kAddressSanitizer) CHECK(b.data() == first);  // (ASan builds allocate every block afresh)
  Tensor c = cpu.empty({(1 << 18) + 100}, DType::F32);
  CHECK(c.data() != b.data());
  Tensor small = cpu.zeros({7}, DType::F32);  // below the pool: plain, zeroed as asked
  CHECK_EQ(small.ptr<float>()[6], 0.f);
}
