/*
 * The subset of the HIP runtime API (libamdhip64) that collbench calls for RCCL runs, declared for this
 * project from HIP's public API and ABI (values and signatures are facts of the ABI; no code is copied).
 *
 * build.rs runs bindgen over this file with dynamic loading: nothing here is linked at build time.
 * Device properties are read through hipDeviceGetName / hipDeviceGetPCIBusId instead of
 * hipGetDeviceProperties, whose struct layout changed between ROCm 5 and 6.
 */
#ifndef COLLBENCH_HIP_API_H
#define COLLBENCH_HIP_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

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
