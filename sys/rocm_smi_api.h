/*
 * The subset of the ROCm SMI C API (librocm_smi64) that collbench calls for topology (GPUs, xGMI links,
 * VRAM) and telemetry (clocks, power, temperature, PCIe link, ECC, throttle status, energy), declared for this project
 * from rocm_smi.h's public ABI (values, signatures and layouts are facts of the ABI; no code is copied).
 *
 * build.rs runs bindgen over this file with dynamic loading: nothing here is linked at build time.
 *
 * Three structs changed between releases, so they are declared opaque for the prototypes and their
 * layouts are declared twice below, once per release family; src/ffi/rocm_smi.rs asks the library's
 * version (rsmi_version_get) and reads the layout that version writes:
 *   - rsmi_frequencies_t and rsmi_pcie_bandwidth_t: ROCm 5 has 32 levels; ROCm 6 (library 6.0 and
 *     later) 33 levels and a leading `bool has_deep_sleep`.
 *   - rsmi_gpu_metrics_t grows with every release (2368 bytes in ROCm 6.4.1, 4544 in 7.2.4): only its
 *     beginning is declared, and it is read into a buffer larger than any release's. ROCm 5 gives the
 *     firmware's ASIC-specific `throttle_status` only; ROCm 6 adds `indep_throttle_status` (the kernel's
 *     ASIC-independent SMU_THROTTLER_* bits).
 *
 * tests/abi.rs compiles this file after the real rocm_smi.h (5.2.3 from Debian 12, 6.4.1 from sid) with
 * COLLBENCH_RSMI_TYPES_FROM_ROCM_SMI_H defined: our enums and opaque types are then skipped, every
 * prototype must agree with the real one, and _Static_asserts compare every enumerator value we declare
 * and every field offset of the matching release's layout with the real ones.
 */
#ifndef COLLBENCH_ROCM_SMI_API_H
#define COLLBENCH_ROCM_SMI_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef COLLBENCH_RSMI_TYPES_FROM_ROCM_SMI_H

/* Status codes we name; Rust sees them as a newtype, since a library may return any other. */
typedef enum {
    RSMI_STATUS_SUCCESS = 0,
    RSMI_STATUS_INVALID_ARGS = 1,
    RSMI_STATUS_NOT_SUPPORTED = 2,
    RSMI_STATUS_INIT_ERROR = 8,
    RSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF
} rsmi_status_t;

typedef enum {
    RSMI_CLK_TYPE_SYS = 0,
    RSMI_CLK_TYPE_MEM = 4,
    RSMI_CLK_INVALID = 0xFFFFFFFF
} rsmi_clk_type_t;

typedef enum {
    RSMI_TEMP_TYPE_EDGE = 0,
    RSMI_TEMP_TYPE_JUNCTION = 1,
    RSMI_TEMP_TYPE_INVALID = 0xFFFFFFFF
} rsmi_temperature_type_t;

typedef enum {
    RSMI_TEMP_CURRENT = 0
} rsmi_temperature_metric_t;

typedef enum {
    RSMI_IOLINK_TYPE_UNDEFINED = 0,
    RSMI_IOLINK_TYPE_PCIEXPRESS = 1,
    RSMI_IOLINK_TYPE_XGMI = 2,
    RSMI_IOLINK_TYPE_SIZE = 0xFFFFFFFF
} RSMI_IO_LINK_TYPE;

/* Memory kinds of rsmi_dev_memory_total_get; the first is VRAM. */
typedef enum {
    RSMI_MEM_TYPE_VRAM = 0
} rsmi_memory_type_t;

/* RAS blocks are bit flags in a 64-bit enum. */
typedef enum {
    RSMI_GPU_BLOCK_UMC = 0x1,
    RSMI_GPU_BLOCK_FUSE = 0x2000,
    RSMI_GPU_BLOCK_RESERVED = 0x8000000000000000
} rsmi_gpu_block_t;

/* The same in every release (collbench_rsmi_version and collbench_rsmi_error_count, below). */
typedef struct collbench_rsmi_version rsmi_version_t;
typedef struct collbench_rsmi_error_count rsmi_error_count_t;

/* Layouts that depend on the release: opaque here, read through the collbench_rsmi* structs below. */
typedef struct collbench_rsmi_frequencies_opaque rsmi_frequencies_t;
typedef struct collbench_rsmi_pcie_bandwidth_opaque rsmi_pcie_bandwidth_t;
typedef struct collbench_rsmi_gpu_metrics_opaque rsmi_gpu_metrics_t;

#endif /* COLLBENCH_RSMI_TYPES_FROM_ROCM_SMI_H */

/* rsmi_version_t and rsmi_error_count_t, the same in every release. */
typedef struct collbench_rsmi_version {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
    const char *build;
} collbench_rsmi_version;

typedef struct collbench_rsmi_error_count {
    uint64_t correctable_err;
    uint64_t uncorrectable_err;
} collbench_rsmi_error_count;

/* rsmi_frequencies_t and rsmi_pcie_bandwidth_t before ROCm 6 (rocm_smi library major version < 6). */
#define COLLBENCH_RSMI5_MAX_NUM_FREQUENCIES 32
typedef struct {
    uint32_t num_supported;
    uint32_t current;
    uint64_t frequency[COLLBENCH_RSMI5_MAX_NUM_FREQUENCIES];
} collbench_rsmi5_frequencies;

typedef struct {
    collbench_rsmi5_frequencies transfer_rate;
    uint32_t lanes[COLLBENCH_RSMI5_MAX_NUM_FREQUENCIES];
} collbench_rsmi5_pcie_bandwidth;

/* The same from ROCm 6 on (library major version 6 and later). */
#define COLLBENCH_RSMI6_MAX_NUM_FREQUENCIES 33
typedef struct {
    bool has_deep_sleep;
    uint32_t num_supported;
    uint32_t current;
    uint64_t frequency[COLLBENCH_RSMI6_MAX_NUM_FREQUENCIES];
} collbench_rsmi6_frequencies;

typedef struct {
    collbench_rsmi6_frequencies transfer_rate;
    uint32_t lanes[COLLBENCH_RSMI6_MAX_NUM_FREQUENCIES];
} collbench_rsmi6_pcie_bandwidth;

/* The beginning of rsmi_gpu_metrics_t (the kernel's gpu_metrics v1), up to what we read, as ROCm 5
 * declares it. */
typedef struct {
    uint16_t structure_size;
    uint8_t format_revision;
    uint8_t content_revision;
} collbench_rsmi_metrics_header;

typedef struct {
    collbench_rsmi_metrics_header common_header;
    uint16_t temperature_edge;
    uint16_t temperature_hotspot;
    uint16_t temperature_mem;
    uint16_t temperature_vrgfx;
    uint16_t temperature_vrsoc;
    uint16_t temperature_vrmem;
    uint16_t average_gfx_activity;
    uint16_t average_umc_activity;
    uint16_t average_mm_activity;
    uint16_t average_socket_power;
    uint64_t energy_accumulator;
    uint64_t system_clock_counter;
    uint16_t average_gfxclk_frequency;
    uint16_t average_socclk_frequency;
    uint16_t average_uclk_frequency;
    uint16_t average_vclk0_frequency;
    uint16_t average_dclk0_frequency;
    uint16_t average_vclk1_frequency;
    uint16_t average_dclk1_frequency;
    uint16_t current_gfxclk;
    uint16_t current_socclk;
    uint16_t current_uclk;
    uint16_t current_vclk0;
    uint16_t current_dclk0;
    uint16_t current_vclk1;
    uint16_t current_dclk1;
    uint32_t throttle_status;
} collbench_rsmi5_gpu_metrics_head;

/* The same beginning as ROCm 6 declares it, on to indep_throttle_status (gpu_metrics v1.3). */
typedef struct {
    collbench_rsmi_metrics_header common_header;
    uint16_t temperature_edge;
    uint16_t temperature_hotspot;
    uint16_t temperature_mem;
    uint16_t temperature_vrgfx;
    uint16_t temperature_vrsoc;
    uint16_t temperature_vrmem;
    uint16_t average_gfx_activity;
    uint16_t average_umc_activity;
    uint16_t average_mm_activity;
    uint16_t average_socket_power;
    uint64_t energy_accumulator;
    uint64_t system_clock_counter;
    uint16_t average_gfxclk_frequency;
    uint16_t average_socclk_frequency;
    uint16_t average_uclk_frequency;
    uint16_t average_vclk0_frequency;
    uint16_t average_dclk0_frequency;
    uint16_t average_vclk1_frequency;
    uint16_t average_dclk1_frequency;
    uint16_t current_gfxclk;
    uint16_t current_socclk;
    uint16_t current_uclk;
    uint16_t current_vclk0;
    uint16_t current_dclk0;
    uint16_t current_vclk1;
    uint16_t current_dclk1;
    uint32_t throttle_status;
    uint16_t current_fan_speed;
    uint16_t pcie_link_width;
    uint16_t pcie_link_speed;
    uint32_t gfx_activity_acc;
    uint32_t mem_activity_acc;
    uint16_t temperature_hbm[4];
    uint64_t firmware_timestamp;
    uint16_t voltage_soc;
    uint16_t voltage_gfx;
    uint16_t voltage_mem;
    uint64_t indep_throttle_status;
} collbench_rsmi6_gpu_metrics_head;

/* Bytes handed to rsmi_dev_gpu_metrics_info_get, which writes its release's whole struct. */
#define COLLBENCH_RSMI_GPU_METRICS_BUFFER 65536

/* Life cycle, version and errors */
rsmi_status_t rsmi_init(uint64_t init_flags);
rsmi_status_t rsmi_shut_down(void);
rsmi_status_t rsmi_version_get(rsmi_version_t *version);
rsmi_status_t rsmi_status_string(rsmi_status_t status, const char **status_string);

/* GPUs and links (topology) */
rsmi_status_t rsmi_num_monitor_devices(uint32_t *num_devices);
rsmi_status_t rsmi_dev_pci_id_get(uint32_t dv_ind, uint64_t *bdfid);
rsmi_status_t rsmi_dev_name_get(uint32_t dv_ind, char *name, size_t len);
rsmi_status_t rsmi_topo_get_link_type(uint32_t dv_ind_src, uint32_t dv_ind_dst, uint64_t *hops,
                                      RSMI_IO_LINK_TYPE *type);

/* Readings (telemetry) */
rsmi_status_t rsmi_dev_gpu_clk_freq_get(uint32_t dv_ind, rsmi_clk_type_t clk_type, rsmi_frequencies_t *f);
/* ROCm 6 and later (MI300's socket power); looked up as optional. */
rsmi_status_t rsmi_dev_current_socket_power_get(uint32_t dv_ind, uint64_t *socket_power);
rsmi_status_t rsmi_dev_power_ave_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *power);
rsmi_status_t rsmi_dev_power_cap_get(uint32_t dv_ind, uint32_t sensor_ind, uint64_t *cap);
rsmi_status_t rsmi_dev_power_cap_default_get(uint32_t dv_ind, uint64_t *default_cap);
rsmi_status_t rsmi_dev_temp_metric_get(uint32_t dv_ind, uint32_t sensor_type, rsmi_temperature_metric_t metric,
                                       int64_t *temperature);
rsmi_status_t rsmi_dev_pci_bandwidth_get(uint32_t dv_ind, rsmi_pcie_bandwidth_t *bandwidth);
rsmi_status_t rsmi_dev_ecc_count_get(uint32_t dv_ind, rsmi_gpu_block_t block, rsmi_error_count_t *ec);
rsmi_status_t rsmi_dev_gpu_metrics_info_get(uint32_t dv_ind, rsmi_gpu_metrics_t *pgpu_metrics);
/* The energy counter (counts of counter_resolution microjoules) and the VRAM's size. */
rsmi_status_t rsmi_dev_energy_count_get(uint32_t dv_ind, uint64_t *power, float *counter_resolution,
                                        uint64_t *timestamp);
rsmi_status_t rsmi_dev_memory_total_get(uint32_t dv_ind, rsmi_memory_type_t mem_type, uint64_t *total);

#ifdef __cplusplus
}
#endif

#endif /* COLLBENCH_ROCM_SMI_API_H */
