// A simulated NVENC (libnvidia-encode.so.1) for tests on machines without a GPU. It encodes
// H.264 with libx264 and HEVC with libx265 through libavcodec (one frame in, one access unit
// out, as NVENC without B-frames or lookahead), reading NV12 input from registered
// (simulated) device memory. Like every NVENC GPU since Maxwell (2nd gen.), it offers both
// codecs (NVIDIA's Video Encode and Decode GPU Support Matrix); a profile GUID must belong to
// the codec initialised (nvEncodeAPI.h lists them per codec). Every call checks struct versions, sizes, pitches, handles and call order
// as the real API documents them, and can be told to fail (sim_common.h). Also:
//   GPUWORKER_SIM_NVENC=none        the GPU has no NVENC (H100, H200, A100): sessions fail
//   GPUWORKER_SIM_NVENC_SESSIONS=N  at most N concurrent sessions (consumer cards' limit)
// (GPUWORKER_SIM_CARD sets both as the card has them; these override it.)
//   GPUWORKER_SIM_NVENC_SYSTEM=DIR  ... counted across processes, as the GeForce driver does
// A refused open hands back a handle that must be destroyed (nvEncodeAPI.h); the exit report
// counts it as a live session until then.
#include <ffnvcodec/nvEncodeAPI.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <deque>
#include <set>
#include <string>
#include <vector>

#include "sim_common.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>
}

namespace {
struct Bitstream {
    std::vector<uint8_t> data;
    bool ready = false, locked = false;
    uint64_t timestamp = 0;
    NV_ENC_PIC_TYPE type = NV_ENC_PIC_TYPE_P;
};
struct Registration {
    void* ptr;
    uint32_t pitch, width, height;
    int mapped = 0;
};
struct Mapping {
    Registration* reg;
};
struct Session {
    void* context;
    // Handed back by a refused open: only nvEncDestroyEncoder takes it.
    bool refused = false;
    // The system-wide slot (lock file descriptor) this session holds, or -1.
    int slot = -1;
    bool initialized = false;
    // Pictures sent since the last end of stream: "the encoder has to be flushed before it
    // can be closed" (FFmpeg nvenc.c); the exit report counts sessions destroyed unflushed.
    int64_t unflushed = 0;
    // What nvEncGetLastErrorString says about the last failure.
    std::string last_error;
    NV_ENC_INITIALIZE_PARAMS init;
    NV_ENC_CONFIG config;
    AVCodecContext* enc = nullptr;
    AVFrame* frame = nullptr;
    AVFrame* planar = nullptr;  // libx265 takes planar 4:2:0, not NV12
    AVPacket* pkt = nullptr;
    std::vector<uint8_t> extradata;
    std::set<Bitstream*> bitstreams;
    std::set<Registration*> registrations;
    std::set<Mapping*> mappings;
    int64_t frames = 0;
    std::deque<uint64_t> timestamps;
};

std::mutex mu;
std::set<Session*> sessions;
size_t destroyed_unflushed = 0;

struct Report {
    ~Report() {
        if (!sim::report_wanted()) return;
        size_t regs = 0, maps = 0, bufs = 0;
        for (auto* s : sessions) {
            regs += s->registrations.size();
            maps += s->mappings.size();
            bufs += s->bitstreams.size();
        }
        fprintf(stderr,
                "gpuworker-sim libnvidia-encode: live sessions=%zu registrations=%zu "
                "mappings=%zu bitstreams=%zu unflushed=%zu\n",
                sessions.size(), regs, maps, bufs, destroyed_unflushed);
    }
} report;

bool same(const GUID& a, const GUID& b) { return memcmp(&a, &b, sizeof a) == 0; }

// An injected failure also leaves its words for nvEncGetLastErrorString.
thread_local std::string injected_text;
#define CHECK_FAIL(name)                                          \
    do {                                                          \
        int e_ = sim::injected("libnvidia-encode", #name);        \
        if (e_) {                                                 \
            injected_text = "simulated failure of " #name;        \
            return (NVENCSTATUS)e_;                               \
        }                                                         \
    } while (0)
#define SESSION(enc)                                              \
    auto* s = (Session*)(enc);                                    \
    {                                                             \
        std::lock_guard<std::mutex> g_(mu);                       \
        if (!sessions.count(s)) return NV_ENC_ERR_INVALID_ENCODERDEVICE; \
        if (s->refused) return NV_ENC_ERR_INVALID_CALL;           \
    }
#define NEED_INIT()                                               \
    if (!s->initialized) return NV_ENC_ERR_ENCODER_NOT_INITIALIZED

bool is_hevc(const GUID& g) { return same(g, NV_ENC_CODEC_HEVC_GUID); }
bool known_codec(const GUID& g) { return same(g, NV_ENC_CODEC_H264_GUID) || is_hevc(g); }

NVENCSTATUS open_encoder(Session* s, bool global_header, AVCodecContext** out) {
    bool hevc = is_hevc(s->init.encodeGUID);
    const AVCodec* codec = avcodec_find_encoder_by_name(hevc ? "libx265" : "libx264");
    if (!codec) return NV_ENC_ERR_GENERIC;
    AVCodecContext* c = avcodec_alloc_context3(codec);
    const NV_ENC_INITIALIZE_PARAMS& in = s->init;
    const NV_ENC_RC_PARAMS& rc = s->config.rcParams;
    c->width = in.encodeWidth;
    c->height = in.encodeHeight;
    c->pix_fmt = hevc ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_NV12;
    c->time_base = AVRational{(int)in.frameRateDen, (int)in.frameRateNum};
    c->framerate = AVRational{(int)in.frameRateNum, (int)in.frameRateDen};
    c->max_b_frames = 0;
    c->gop_size = s->config.gopLength == NVENC_INFINITE_GOPLENGTH ? 100000 : s->config.gopLength;
    c->thread_count = 1;
    if (global_header) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* o = nullptr;
    av_dict_set(&o, "preset", "veryfast", 0);
    av_dict_set(&o, "tune", "zerolatency", 0);
    av_dict_set(&o, "forced-idr", "1", 0);
    if (rc.rateControlMode == NV_ENC_PARAMS_RC_CBR) {
        c->bit_rate = rc.averageBitRate;
        c->rc_min_rate = rc.averageBitRate;
    } else {
        av_dict_set_int(&o, "crf", rc.targetQuality ? rc.targetQuality : 23, 0);
    }
    c->rc_max_rate = rc.maxBitRate;
    c->rc_buffer_size = rc.vbvBufferSize;
    if (hevc) {
        char params[160];
        snprintf(params, sizeof params, "log-level=error:pools=none:frame-threads=1:keyint=%d:scenecut=0",
                 c->gop_size);
        av_dict_set(&o, "x265-params", params, 0);
    }
    const GUID& p = s->config.profileGUID;
    if (same(p, NV_ENC_H264_PROFILE_BASELINE_GUID)) av_dict_set(&o, "profile", "baseline", 0);
    if (same(p, NV_ENC_H264_PROFILE_MAIN_GUID)) av_dict_set(&o, "profile", "main", 0);
    if (same(p, NV_ENC_H264_PROFILE_HIGH_GUID)) av_dict_set(&o, "profile", "high", 0);
    // Constrained High is High without B-frames, which this encoder never makes.
    if (same(p, NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID)) av_dict_set(&o, "profile", "high", 0);
    int r = avcodec_open2(c, codec, &o);
    av_dict_free(&o);
    if (r < 0) {
        avcodec_free_context(&c);
        return NV_ENC_ERR_UNSUPPORTED_PARAM;
    }
    *out = c;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS GetEncodeGUIDCount(void* enc, uint32_t* n) {
    CHECK_FAIL(nvEncGetEncodeGUIDCount);
    SESSION(enc);
    if (!n) return NV_ENC_ERR_INVALID_PTR;
    *n = 2;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS GetEncodeGUIDs(void* enc, GUID* guids, uint32_t size, uint32_t* count) {
    CHECK_FAIL(nvEncGetEncodeGUIDs);
    SESSION(enc);
    if (!guids || !count) return NV_ENC_ERR_INVALID_PTR;
    if (size < 2) return NV_ENC_ERR_INVALID_PARAM;
    guids[0] = NV_ENC_CODEC_H264_GUID;
    guids[1] = NV_ENC_CODEC_HEVC_GUID;
    *count = 2;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS GetEncodeCaps(void* enc, GUID codec, NV_ENC_CAPS_PARAM* q, int* v) {
    CHECK_FAIL(nvEncGetEncodeCaps);
    SESSION(enc);
    if (!q || !v) return NV_ENC_ERR_INVALID_PTR;
    if (q->version != NV_ENC_CAPS_PARAM_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (!known_codec(codec)) return NV_ENC_ERR_INVALID_PARAM;
    switch (q->capsToQuery) {
        case NV_ENC_CAPS_WIDTH_MAX:
        case NV_ENC_CAPS_HEIGHT_MAX: *v = 4096; break;
        case NV_ENC_CAPS_NUM_MAX_BFRAMES: *v = 0; break;
        default: *v = 0;
    }
    return NV_ENC_SUCCESS;
}

NVENCSTATUS GetEncodePresetConfigEx(void* enc, GUID codec, GUID preset, NV_ENC_TUNING_INFO tuning,
                                    NV_ENC_PRESET_CONFIG* out) {
    CHECK_FAIL(nvEncGetEncodePresetConfigEx);
    SESSION(enc);
    if (!out) return NV_ENC_ERR_INVALID_PTR;
    if (out->version != NV_ENC_PRESET_CONFIG_VER || out->presetCfg.version != NV_ENC_CONFIG_VER)
        return NV_ENC_ERR_INVALID_VERSION;
    if (!known_codec(codec)) return NV_ENC_ERR_INVALID_PARAM;
    const GUID presets[] = {NV_ENC_PRESET_P1_GUID, NV_ENC_PRESET_P2_GUID, NV_ENC_PRESET_P3_GUID,
                            NV_ENC_PRESET_P4_GUID, NV_ENC_PRESET_P5_GUID, NV_ENC_PRESET_P6_GUID,
                            NV_ENC_PRESET_P7_GUID};
    bool known = false;
    for (auto& p : presets) known |= same(p, preset);
    if (!known || tuning == NV_ENC_TUNING_INFO_UNDEFINED || tuning >= NV_ENC_TUNING_INFO_COUNT)
        return NV_ENC_ERR_INVALID_PARAM;
    uint32_t v = out->presetCfg.version;
    memset(&out->presetCfg, 0, sizeof out->presetCfg);
    NV_ENC_CONFIG& c = out->presetCfg;
    c.version = v;
    c.profileGUID = NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID;
    c.gopLength = 250;
    c.frameIntervalP = 3;
    c.rcParams.version = NV_ENC_RC_PARAMS_VER;
    c.rcParams.rateControlMode = NV_ENC_PARAMS_RC_VBR;
    c.rcParams.averageBitRate = 5000000;
    if (is_hevc(codec))
        c.encodeCodecConfig.hevcConfig.idrPeriod = 250;
    else
        c.encodeCodecConfig.h264Config.idrPeriod = 250;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS InitializeEncoder(void* enc, NV_ENC_INITIALIZE_PARAMS* in) {
    CHECK_FAIL(nvEncInitializeEncoder);
    SESSION(enc);
    if (!in || !in->encodeConfig) return NV_ENC_ERR_INVALID_PTR;
    if (s->initialized) return NV_ENC_ERR_INVALID_CALL;
    if (in->version != NV_ENC_INITIALIZE_PARAMS_VER ||
        in->encodeConfig->version != NV_ENC_CONFIG_VER ||
        in->encodeConfig->rcParams.version != NV_ENC_RC_PARAMS_VER)
        return NV_ENC_ERR_INVALID_VERSION;
    if (!known_codec(in->encodeGUID)) return NV_ENC_ERR_INVALID_PARAM;
    {
        // The profile must be one of the initialised codec's (or auto-select).
        const GUID& p = in->encodeConfig->profileGUID;
        bool h264p = same(p, NV_ENC_H264_PROFILE_BASELINE_GUID) ||
                     same(p, NV_ENC_H264_PROFILE_MAIN_GUID) || same(p, NV_ENC_H264_PROFILE_HIGH_GUID) ||
                     same(p, NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID);
        bool hevcp = same(p, NV_ENC_HEVC_PROFILE_MAIN_GUID);
        if (!same(p, NV_ENC_CODEC_PROFILE_AUTOSELECT_GUID) &&
            (is_hevc(in->encodeGUID) ? !hevcp : !h264p)) {
            s->last_error = "InitializeEncoder: the profile GUID does not belong to the codec";
            return NV_ENC_ERR_UNSUPPORTED_PARAM;
        }
    }
    if (in->encodeWidth < 16 || in->encodeHeight < 16 || in->encodeWidth > 4096 ||
        in->encodeHeight > 4096 || in->frameRateNum == 0 || in->frameRateDen == 0 ||
        in->maxEncodeWidth < in->encodeWidth || in->maxEncodeHeight < in->encodeHeight ||
        in->bufferFormat != NV_ENC_BUFFER_FORMAT_NV12)
        return NV_ENC_ERR_INVALID_PARAM;
    // This simulation is synchronous and without B-frames, as gpuworker uses NVENC.
    if (in->enableEncodeAsync || !in->enablePTD || in->encodeConfig->frameIntervalP != 1)
        return NV_ENC_ERR_UNSUPPORTED_PARAM;
    auto mode = in->encodeConfig->rcParams.rateControlMode;
    if (mode != NV_ENC_PARAMS_RC_CBR && mode != NV_ENC_PARAMS_RC_VBR) return NV_ENC_ERR_UNSUPPORTED_PARAM;
    if (mode == NV_ENC_PARAMS_RC_CBR && in->encodeConfig->rcParams.averageBitRate == 0)
        return NV_ENC_ERR_INVALID_PARAM;
    s->init = *in;
    s->config = *in->encodeConfig;
    s->init.encodeConfig = &s->config;
    AVCodecContext* probe = nullptr;
    NVENCSTATUS r = open_encoder(s, true, &probe);
    if (r != NV_ENC_SUCCESS) return r;
    s->extradata.assign(probe->extradata, probe->extradata + probe->extradata_size);
    avcodec_free_context(&probe);
    r = open_encoder(s, false, &s->enc);
    if (r != NV_ENC_SUCCESS) return r;
    s->frame = av_frame_alloc();
    s->pkt = av_packet_alloc();
    s->initialized = true;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS GetSequenceParams(void* enc, NV_ENC_SEQUENCE_PARAM_PAYLOAD* p) {
    CHECK_FAIL(nvEncGetSequenceParams);
    SESSION(enc);
    NEED_INIT();
    if (!p || !p->spsppsBuffer || !p->outSPSPPSPayloadSize) return NV_ENC_ERR_INVALID_PTR;
    if (p->version != NV_ENC_SEQUENCE_PARAM_PAYLOAD_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (p->inBufferSize < s->extradata.size()) return NV_ENC_ERR_NOT_ENOUGH_BUFFER;
    memcpy(p->spsppsBuffer, s->extradata.data(), s->extradata.size());
    *p->outSPSPPSPayloadSize = (uint32_t)s->extradata.size();
    return NV_ENC_SUCCESS;
}

NVENCSTATUS CreateBitstreamBuffer(void* enc, NV_ENC_CREATE_BITSTREAM_BUFFER* p) {
    CHECK_FAIL(nvEncCreateBitstreamBuffer);
    SESSION(enc);
    NEED_INIT();
    if (!p) return NV_ENC_ERR_INVALID_PTR;
    if (p->version != NV_ENC_CREATE_BITSTREAM_BUFFER_VER) return NV_ENC_ERR_INVALID_VERSION;
    auto* b = new Bitstream();
    s->bitstreams.insert(b);
    p->bitstreamBuffer = b;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS DestroyBitstreamBuffer(void* enc, NV_ENC_OUTPUT_PTR buf) {
    CHECK_FAIL(nvEncDestroyBitstreamBuffer);
    SESSION(enc);
    auto* b = (Bitstream*)buf;
    if (!s->bitstreams.erase(b)) return NV_ENC_ERR_INVALID_PARAM;
    if (b->locked) fprintf(stderr, "sim libnvidia-encode: destroying a locked bitstream\n");
    delete b;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS RegisterResource(void* enc, NV_ENC_REGISTER_RESOURCE* r) {
    CHECK_FAIL(nvEncRegisterResource);
    SESSION(enc);
    NEED_INIT();
    if (!r) return NV_ENC_ERR_INVALID_PTR;
    if (r->version != NV_ENC_REGISTER_RESOURCE_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (r->resourceType != NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR ||
        r->bufferFormat != NV_ENC_BUFFER_FORMAT_NV12 || r->bufferUsage != NV_ENC_INPUT_IMAGE ||
        r->width != s->init.encodeWidth || r->height != s->init.encodeHeight ||
        r->pitch < r->width || r->pitch % 4 != 0)
        return NV_ENC_ERR_INVALID_PARAM;
    size_t bytes = (size_t)r->pitch * (r->height + (r->height + 1) / 2);
    unsigned long long ptr = (unsigned long long)(uintptr_t)r->resourceToRegister;
    if (!gpuworker_sim_device_range(ptr, bytes)) return NV_ENC_ERR_RESOURCE_REGISTER_FAILED;
    // Stream-ordered (pool) memory is refused: "NVENC does not allow registering the
    // stream-ordered allocated memory" (GStreamer nvcodec gstnvencobject.h, MR 8516); only
    // cuMemAlloc/cuMemAllocPitch memory is documented (nvEncodeAPI.h, NV_ENC_REGISTER_RESOURCE).
    if (gpuworker_sim_is_pool_memory(ptr)) {
        s->last_error = "RegisterResource: stream-ordered (cuMemAllocAsync) memory cannot be registered";
        return NV_ENC_ERR_RESOURCE_REGISTER_FAILED;
    }
    for (auto* old : s->registrations)
        if (old->ptr == r->resourceToRegister) return NV_ENC_ERR_RESOURCE_REGISTER_FAILED;
    auto* reg = new Registration{r->resourceToRegister, r->pitch, r->width, r->height};
    s->registrations.insert(reg);
    r->registeredResource = reg;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS UnregisterResource(void* enc, NV_ENC_REGISTERED_PTR h) {
    CHECK_FAIL(nvEncUnregisterResource);
    SESSION(enc);
    auto* reg = (Registration*)h;
    if (!s->registrations.count(reg)) return NV_ENC_ERR_RESOURCE_NOT_REGISTERED;
    if (reg->mapped) return NV_ENC_ERR_INVALID_CALL;
    s->registrations.erase(reg);
    delete reg;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS MapInputResource(void* enc, NV_ENC_MAP_INPUT_RESOURCE* m) {
    CHECK_FAIL(nvEncMapInputResource);
    SESSION(enc);
    NEED_INIT();
    if (!m) return NV_ENC_ERR_INVALID_PTR;
    if (m->version != NV_ENC_MAP_INPUT_RESOURCE_VER) return NV_ENC_ERR_INVALID_VERSION;
    auto* reg = (Registration*)m->registeredResource;
    if (!s->registrations.count(reg)) return NV_ENC_ERR_RESOURCE_NOT_REGISTERED;
    if (reg->mapped) return NV_ENC_ERR_MAP_FAILED;
    reg->mapped = 1;
    auto* map = new Mapping{reg};
    s->mappings.insert(map);
    m->mappedResource = map;
    m->mappedBufferFmt = NV_ENC_BUFFER_FORMAT_NV12;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS UnmapInputResource(void* enc, NV_ENC_INPUT_PTR h) {
    CHECK_FAIL(nvEncUnmapInputResource);
    SESSION(enc);
    auto* map = (Mapping*)h;
    if (!s->mappings.erase(map)) return NV_ENC_ERR_RESOURCE_NOT_MAPPED;
    map->reg->mapped = 0;
    delete map;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS EncodePicture(void* enc, NV_ENC_PIC_PARAMS* pic) {
    CHECK_FAIL(nvEncEncodePicture);
    SESSION(enc);
    NEED_INIT();
    if (!pic) return NV_ENC_ERR_INVALID_PTR;
    if (pic->version != NV_ENC_PIC_PARAMS_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (pic->encodePicFlags & NV_ENC_PIC_FLAG_EOS) {
        s->unflushed = 0;
        return NV_ENC_SUCCESS;  // nothing held back
    }
    s->unflushed++;
    auto* map = (Mapping*)pic->inputBuffer;
    auto* out = (Bitstream*)pic->outputBitstream;
    if (!s->mappings.count(map)) return NV_ENC_ERR_RESOURCE_NOT_MAPPED;
    if (!s->bitstreams.count(out) || out->locked) return NV_ENC_ERR_INVALID_PARAM;
    const Registration* reg = map->reg;
    if (pic->inputWidth != s->init.encodeWidth || pic->inputHeight != s->init.encodeHeight ||
        pic->inputPitch != reg->pitch || pic->bufferFmt != NV_ENC_BUFFER_FORMAT_NV12 ||
        pic->pictureStruct != NV_ENC_PIC_STRUCT_FRAME)
        return NV_ENC_ERR_INVALID_PARAM;
    AVFrame* f = s->frame;
    av_frame_unref(f);
    f->format = AV_PIX_FMT_NV12;
    f->width = reg->width;
    f->height = reg->height;
    f->data[0] = (uint8_t*)reg->ptr;
    f->data[1] = (uint8_t*)reg->ptr + (size_t)reg->pitch * reg->height;
    f->linesize[0] = f->linesize[1] = reg->pitch;
    if (is_hevc(s->init.encodeGUID)) {
        // The encoder's input copy: NV12 from device memory to planar 4:2:0.
        AVFrame* q = s->planar;
        if (!q) {
            q = s->planar = av_frame_alloc();
            q->format = AV_PIX_FMT_YUV420P;
            q->width = reg->width;
            q->height = reg->height;
            if (av_frame_get_buffer(q, 0) < 0) return NV_ENC_ERR_OUT_OF_MEMORY;
        }
        if (av_frame_make_writable(q) < 0) return NV_ENC_ERR_OUT_OF_MEMORY;
        for (uint32_t y = 0; y < reg->height; y++)
            memcpy(q->data[0] + y * q->linesize[0], f->data[0] + y * f->linesize[0], reg->width);
        for (uint32_t y = 0; y < (reg->height + 1) / 2; y++) {
            const uint8_t* uv = f->data[1] + y * f->linesize[1];
            for (uint32_t x = 0; x < (reg->width + 1) / 2; x++) {
                q->data[1][y * q->linesize[1] + x] = uv[2 * x];
                q->data[2][y * q->linesize[2] + x] = uv[2 * x + 1];
            }
        }
        f = q;
    }
    f->pts = s->frames++;
    f->pict_type = (pic->encodePicFlags & NV_ENC_PIC_FLAG_FORCEIDR) ? AV_PICTURE_TYPE_I
                                                                     : AV_PICTURE_TYPE_NONE;
    if (avcodec_send_frame(s->enc, f) < 0) return NV_ENC_ERR_GENERIC;
    s->timestamps.push_back(pic->inputTimeStamp);
    int r = avcodec_receive_packet(s->enc, s->pkt);
    if (r == AVERROR(EAGAIN)) return NV_ENC_ERR_NEED_MORE_INPUT;
    if (r < 0) return NV_ENC_ERR_GENERIC;
    out->data.assign(s->pkt->data, s->pkt->data + s->pkt->size);
    out->ready = true;
    out->timestamp = s->timestamps.front();
    s->timestamps.pop_front();
    out->type = (s->pkt->flags & AV_PKT_FLAG_KEY) ? NV_ENC_PIC_TYPE_IDR : NV_ENC_PIC_TYPE_P;
    av_packet_unref(s->pkt);
    return NV_ENC_SUCCESS;
}

NVENCSTATUS LockBitstream(void* enc, NV_ENC_LOCK_BITSTREAM* l) {
    CHECK_FAIL(nvEncLockBitstream);
    SESSION(enc);
    if (!l) return NV_ENC_ERR_INVALID_PTR;
    if (l->version != NV_ENC_LOCK_BITSTREAM_VER) return NV_ENC_ERR_INVALID_VERSION;
    auto* b = (Bitstream*)l->outputBitstream;
    if (!s->bitstreams.count(b)) return NV_ENC_ERR_INVALID_PARAM;
    if (b->locked || !b->ready) return NV_ENC_ERR_INVALID_CALL;
    b->locked = true;
    l->bitstreamBufferPtr = b->data.data();
    l->bitstreamSizeInBytes = (uint32_t)b->data.size();
    l->outputTimeStamp = b->timestamp;
    l->pictureType = b->type;
    l->pictureStruct = NV_ENC_PIC_STRUCT_FRAME;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS UnlockBitstream(void* enc, NV_ENC_OUTPUT_PTR buf) {
    CHECK_FAIL(nvEncUnlockBitstream);
    SESSION(enc);
    auto* b = (Bitstream*)buf;
    if (!s->bitstreams.count(b) || !b->locked) return NV_ENC_ERR_INVALID_CALL;
    b->locked = false;
    b->ready = false;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS DestroyEncoder(void* enc) {
    CHECK_FAIL(nvEncDestroyEncoder);
    auto* s = (Session*)enc;
    {
        std::lock_guard<std::mutex> g(mu);
        if (!sessions.erase(s)) return NV_ENC_ERR_INVALID_ENCODERDEVICE;
    }
    if (s->slot >= 0) close(s->slot);  // frees the system-wide slot
    if (s->initialized && s->unflushed > 0) {
        std::lock_guard<std::mutex> g(mu);
        destroyed_unflushed++;
        fprintf(stderr, "sim libnvidia-encode: encoder destroyed without end of stream\n");
    }
    if (!s->registrations.empty() || !s->mappings.empty() || !s->bitstreams.empty())
        fprintf(stderr,
                "sim libnvidia-encode: encoder destroyed with %zu registrations, %zu mappings, "
                "%zu bitstreams still held\n",
                s->registrations.size(), s->mappings.size(), s->bitstreams.size());
    for (auto* r : s->registrations) delete r;
    for (auto* m : s->mappings) delete m;
    for (auto* b : s->bitstreams) delete b;
    avcodec_free_context(&s->enc);
    av_frame_free(&s->frame);
    av_frame_free(&s->planar);
    av_packet_free(&s->pkt);
    delete s;
    return NV_ENC_SUCCESS;
}

// The GeForce session cap is enforced by the driver across all processes (go-livepeer#870,
// keylase/nvidia-patch): with GPUWORKER_SIM_NVENC_SYSTEM=DIR the N sessions of
// GPUWORKER_SIM_NVENC_SESSIONS are N lock files DIR/slot<i>, each held (flock) by the session
// that took it, in whichever process; a process that dies frees its slots as the driver does.
// Without it, sessions are counted in this process only.
int take_system_slot(const char* dir, int cap) {
    for (int i = 0; i < cap; ++i) {
        std::string path = std::string(dir) + "/slot" + std::to_string(i);
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
        close(fd);
    }
    return -1;
}

// A refused open still hands back a handle, which "the client must [destroy with]
// NvEncDestroyEncoder" (nvEncodeAPI.h, nvEncOpenEncodeSessionEx); every other call on it fails.
NVENCSTATUS refuse(void* device, void** enc, NVENCSTATUS why) {
    auto* s = new Session();
    s->context = device;
    s->refused = true;
    sessions.insert(s);
    *enc = s;
    return why;
}

const char* GetLastErrorString(void* enc) {
    std::lock_guard<std::mutex> g(mu);
    auto* s = (Session*)enc;
    if (!sessions.count(s)) return nullptr;
    return s->last_error.empty() ? injected_text.c_str() : s->last_error.c_str();
}

NVENCSTATUS OpenEncodeSessionEx(NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS* p, void** enc) {
    NVENCSTATUS injected = (NVENCSTATUS)sim::injected("libnvidia-encode", "nvEncOpenEncodeSessionEx");
    if (!p || !enc) return NV_ENC_ERR_INVALID_PTR;
    if (p->version != NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER) return NV_ENC_ERR_INVALID_VERSION;
    if (p->apiVersion != NVENCAPI_VERSION) return NV_ENC_ERR_INVALID_VERSION;
    if (p->deviceType != NV_ENC_DEVICE_TYPE_CUDA) return NV_ENC_ERR_UNSUPPORTED_DEVICE;
    if (!gpuworker_sim_is_context(p->device)) return NV_ENC_ERR_INVALID_DEVICE;
    const char* kind = getenv("GPUWORKER_SIM_NVENC");
    if ((kind && strcmp(kind, "none") == 0) || !sim::card().nvenc)
        return NV_ENC_ERR_NO_ENCODE_DEVICE;
    const char* lim = getenv("GPUWORKER_SIM_NVENC_SESSIONS");
    int cap = lim ? atoi(lim) : sim::card().nvenc_cap;
    const char* system = getenv("GPUWORKER_SIM_NVENC_SYSTEM");
    std::lock_guard<std::mutex> g(mu);
    if (injected) return refuse(p->device, enc, injected);
    int slot = -1;
    if (cap > 0 && system) {
        slot = take_system_slot(system, cap);
        if (slot < 0) return refuse(p->device, enc, NV_ENC_ERR_OUT_OF_MEMORY);
    } else if (cap > 0) {
        int live = 0;
        for (auto* o : sessions) live += !o->refused;
        if (live >= cap) return refuse(p->device, enc, NV_ENC_ERR_OUT_OF_MEMORY);
    }
    auto* s = new Session();
    s->context = p->device;
    s->slot = slot;
    sessions.insert(s);
    *enc = s;
    return NV_ENC_SUCCESS;
}
}  // namespace

extern "C" {

// The newest API the driver speaks: the headers' (11.1) unless GPUWORKER_SIM_NVENC_API says
// otherwise (R535-R570 drivers answer 12.1-13.0). A driver serves every older API version a
// client asks for in its struct versions (nvEncodeAPI.h, NvEncodeAPIGetMaxSupportedVersion).
NVENCSTATUS NvEncodeAPIGetMaxSupportedVersion(uint32_t* v) {
    CHECK_FAIL(NvEncodeAPIGetMaxSupportedVersion);
    if (!v) return NV_ENC_ERR_INVALID_PTR;
    unsigned major = NVENCAPI_MAJOR_VERSION, minor = NVENCAPI_MINOR_VERSION;
    if (const char* api = getenv("GPUWORKER_SIM_NVENC_API")) sscanf(api, "%u.%u", &major, &minor);
    *v = (major << 4) | minor;
    return NV_ENC_SUCCESS;
}

NVENCSTATUS NvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST* f) {
    CHECK_FAIL(NvEncodeAPICreateInstance);
    if (!f) return NV_ENC_ERR_INVALID_PTR;
    if (f->version != NV_ENCODE_API_FUNCTION_LIST_VER) return NV_ENC_ERR_INVALID_VERSION;
    // Only the entry points gpuworker calls; the others stay null, as a check that it does
    // not depend on them.
    f->nvEncOpenEncodeSessionEx = OpenEncodeSessionEx;
    f->nvEncGetEncodeGUIDCount = GetEncodeGUIDCount;
    f->nvEncGetEncodeGUIDs = GetEncodeGUIDs;
    f->nvEncGetEncodeCaps = GetEncodeCaps;
    f->nvEncGetEncodePresetConfigEx = GetEncodePresetConfigEx;
    f->nvEncInitializeEncoder = InitializeEncoder;
    f->nvEncGetSequenceParams = GetSequenceParams;
    f->nvEncCreateBitstreamBuffer = CreateBitstreamBuffer;
    f->nvEncDestroyBitstreamBuffer = DestroyBitstreamBuffer;
    f->nvEncRegisterResource = RegisterResource;
    f->nvEncUnregisterResource = UnregisterResource;
    f->nvEncMapInputResource = MapInputResource;
    f->nvEncUnmapInputResource = UnmapInputResource;
    f->nvEncEncodePicture = EncodePicture;
    f->nvEncLockBitstream = LockBitstream;
    f->nvEncUnlockBitstream = UnlockBitstream;
    f->nvEncDestroyEncoder = DestroyEncoder;
    f->nvEncGetLastErrorString = GetLastErrorString;
    return NV_ENC_SUCCESS;
}

}  // extern "C"
