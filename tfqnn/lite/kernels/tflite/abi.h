// The slice of TensorFlow Lite's C ABI (tensorflow/lite/core/c/common.h) that
// tfqnn's kernels use, declared here because neither the TensorFlow nor the
// ai-edge-litert wheel ships the headers. Layouts are LP64 and checked by the
// static_asserts below against the sizes of TF 2.21 / ai-edge-litert 2.3.0;
// the end-to-end tests through both runtimes guard them. Fields after the last
// one we use are omitted (we never allocate these structs, only read them),
// except where the runtime takes a struct by value or copies it by our size.
#ifndef TFQNN_LITE_KERNELS_TFLITE_ABI_H_
#define TFQNN_LITE_KERNELS_TFLITE_ABI_H_

#include <cstddef>
#include <cstdint>

extern "C" {

// The enums take any int, as the C header's do: the runtime passes values
// not listed here (other statuses, tensor types such as kTfLiteInt4 = 18),
// and in C++ loading such a value from an enum without a fixed underlying
// type is undefined behaviour when it is outside the listed values' range.
typedef enum : int { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef enum : int {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef enum : int {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
} TfLiteAllocationType;

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct {
  int type;  // TfLiteQuantizationType
  void* params;
} TfLiteQuantization;

struct TfLiteDelegate;

typedef struct TfLiteTensor {
  TfLiteType type;
  void* data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  bool might_have_side_effect;
} TfLiteNode;

struct TfLiteRegistration;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context, TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext*, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext*, int tensors_to_add,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext*, int node_index, TfLiteNode** node,
                                         struct TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext*,
                                                        struct TfLiteRegistration registration,
                                                        const TfLiteIntArray* nodes_to_replace,
                                                        struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  // Further fields are not used by tfqnn.
} TfLiteContext;

typedef struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* async_kernel;
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

}  // extern "C"

static_assert(sizeof(void*) == 8, "tfqnn's TFLite glue assumes LP64");
static_assert(sizeof(TfLiteTensor) == 112, "TfLiteTensor layout");
static_assert(offsetof(TfLiteTensor, quantization) == 80, "TfLiteTensor");
static_assert(sizeof(TfLiteNode) == 80, "TfLiteNode layout");
static_assert(offsetof(TfLiteContext, recommended_num_threads) == 72, "TfLiteContext layout");
static_assert(sizeof(TfLiteRegistration) == 88, "TfLiteRegistration layout");
static_assert(sizeof(TfLiteDelegate) == 56, "TfLiteDelegate layout");

namespace tfqnn {
namespace tflite {
constexpr int kBuiltinCustom = 32;  // BuiltinOperator_CUSTOM
constexpr int64_t kDelegateFlagsAllowDynamicTensors = 1;
}  // namespace tflite
}  // namespace tfqnn

#endif  // TFQNN_LITE_KERNELS_TFLITE_ABI_H_
