/*
 * The subset of the HIP runtime API (libamdhip64) that collbench calls for RCCL runs, declared for this
 * project from HIP's public API and ABI (values and signatures are facts of the ABI; no code is copied).
 *
 * build.rs runs bindgen over this file with dynamic loading: nothing here is linked at build time.
 * Device properties are read through hipDeviceGetName / hipDeviceGetPCIBusId instead of
 * hipGetDeviceProperties, whose struct layout changed between ROCm 5 and 6.
 *
 * tests/abi.rs compiles this file after the real hip_runtime_api.h of HIP 7.2.4 (Debian experimental)
 * with COLLBENCH_HIP_TYPES_FROM_HIP_H defined: our types are then skipped, every prototype must agree
 * with the real one, and _Static_asserts compare our enum values and flags with the real ones.
 */
#ifndef COLLBENCH_HIP_API_H
#define COLLBENCH_HIP_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef COLLBENCH_HIP_TYPES_FROM_HIP_H

/* Error codes we name; Rust sees them as a newtype because a library may return any other. */
typedef enum {
    hipSuccess = 0,
    hipErrorInvalidValue = 1,
    hipErrorOutOfMemory = 2,
    hipErrorNotInitialized = 3,
    hipErrorInsufficientDriver = 35,
    hipErrorNoDevice = 100,
    hipErrorInvalidDevice = 101,
    hipErrorNotReady = 600
} hipError_t;

typedef enum {
    hipMemcpyHostToHost = 0,
    hipMemcpyHostToDevice = 1,
    hipMemcpyDeviceToHost = 2,
    hipMemcpyDeviceToDevice = 3,
    hipMemcpyDefault = 4
} hipMemcpyKind;

typedef struct ihipStream_t *hipStream_t;
typedef struct ihipEvent_t *hipEvent_t;

#endif /* COLLBENCH_HIP_TYPES_FROM_HIP_H */

/* Allocation flags (macros in HIP's header, named here under our own names): hipHostMalloc's default,
 * hipMallocManaged's hipMemAttachGlobal, hipExtMallocWithFlags' fine-grained and uncached device
 * memory (rccl-tests' -Y fine: uncached from HIP 5.7 on, fine-grained before). */
#define COLLBENCH_HIP_HOST_MALLOC_DEFAULT 0x0
#define COLLBENCH_HIP_MEM_ATTACH_GLOBAL 0x1
#define COLLBENCH_HIP_DEVICE_MALLOC_FINEGRAINED 0x1
#define COLLBENCH_HIP_DEVICE_MALLOC_UNCACHED 0x3

const char *hipGetErrorString(hipError_t error);
const char *hipGetErrorName(hipError_t error);
hipError_t hipRuntimeGetVersion(int *runtimeVersion);
hipError_t hipDriverGetVersion(int *driverVersion);

hipError_t hipGetDeviceCount(int *count);
hipError_t hipSetDevice(int deviceId);
hipError_t hipDeviceGetName(char *name, int len, int device);
hipError_t hipDeviceGetPCIBusId(char *pciBusId, int len, int device);

hipError_t hipMalloc(void **ptr, size_t size);
hipError_t hipFree(void *ptr);
/* The other memory kinds of rccl-tests' -Y: fine-grained device memory, pinned host memory, managed. */
hipError_t hipExtMallocWithFlags(void **ptr, size_t sizeBytes, unsigned int flags);
hipError_t hipHostMalloc(void **ptr, size_t size, unsigned int flags);
hipError_t hipHostFree(void *ptr);
hipError_t hipMallocManaged(void **dev_ptr, size_t size, unsigned int flags);
hipError_t hipMemcpy(void *dst, const void *src, size_t sizeBytes, hipMemcpyKind kind);
hipError_t hipMemset(void *dst, int value, size_t sizeBytes);
hipError_t hipMemcpyAsync(void *dst, const void *src, size_t sizeBytes, hipMemcpyKind kind, hipStream_t stream);
hipError_t hipMemGetInfo(size_t *free, size_t *total);

hipError_t hipStreamCreate(hipStream_t *stream);
hipError_t hipStreamDestroy(hipStream_t stream);
hipError_t hipStreamQuery(hipStream_t stream);
hipError_t hipStreamSynchronize(hipStream_t stream);

hipError_t hipEventCreate(hipEvent_t *event);
hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream);
hipError_t hipEventElapsedTime(float *ms, hipEvent_t start, hipEvent_t stop);
hipError_t hipEventSynchronize(hipEvent_t event);
hipError_t hipEventDestroy(hipEvent_t event);

#ifdef __cplusplus
}
#endif

#endif /* COLLBENCH_HIP_API_H */
