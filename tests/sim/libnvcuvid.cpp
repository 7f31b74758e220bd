// A simulated NVDEC (libnvcuvid.so.1) for tests on machines without a GPU. The parser decodes
// with libavcodec's H.264 or HEVC decoder and drives the caller's callbacks the way NVDEC's parser
// does (sequence → decode picture → display picture, the display held back by
// ulMaxDisplayDelay pictures; the surfaces each sequence needs from its references and
// reordering, and a parser that runs out of them fails); cuvidDecodePicture stores the picture
// as NV12 in a decode surface, and cuvidMapVideoFrame64 copies it into an output surface in
// (simulated) device memory. Every call checks its arguments and the call order, and can be
// told to fail (sim_common.h).
#include <ffnvcodec/dynlink_cuda.h>
#include <ffnvcodec/dynlink_cuviddec.h>
#include <ffnvcodec/dynlink_nvcuvid.h>

#include <deque>
#include <set>
#include <vector>

#include "sim_common.h"

extern "C" {
#include <libavcodec/avcodec.h>
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes);
CUresult cuMemFree_v2(CUdeviceptr p);
CUresult cuCtxGetCurrent(CUcontext* c);
}

namespace {
const int MAX_SIZE = 4096;
// CUDA error codes the nv-codec-headers' dynlink_cuda.h does not name.
const CUresult CUDA_ERROR_INVALID_VALUE = (CUresult)1;
const CUresult CUDA_ERROR_OUT_OF_MEMORY = (CUresult)2;
const CUresult CUDA_ERROR_INVALID_CONTEXT = (CUresult)201;
const CUresult CUDA_ERROR_INVALID_HANDLE = (CUresult)400;
const CUresult CUDA_ERROR_NOT_SUPPORTED = (CUresult)801;

struct Decoder {
    CUVIDDECODECREATEINFO info;
    unsigned pitch = 0;
    size_t surface_bytes = 0;
    std::vector<CUdeviceptr> decode, output;
    std::vector<bool> decoded, corrupt;
    std::set<CUdeviceptr> mapped;
    int pictures = 0;
};

struct Parser {
    CUVIDPARSERPARAMS params;
    AVCodecContext* av = nullptr;
    AVPacket* pkt = nullptr;
    AVFrame* frame = nullptr;
    int width = 0, height = 0;
    // What the last sequence callback was told the stream needs.
    int min_surfaces = 0;
    unsigned surfaces = 1;
    unsigned next = 0;
    bool failed = false;
    // Decoded pictures waiting for display (ulMaxDisplayDelay of them at most), as
    // (surface, timestamp): the real parser displays a picture only after that many more were
    // decoded, or at the end of the stream (dynlink_nvcuvid.h, ulMaxDisplayDelay).
    std::deque<std::pair<int, int64_t>> waiting;
};

std::mutex mu;
std::set<Decoder*> decoders;
std::set<Parser*> parsers;
// The picture the parser is handing to cuvidDecodePicture (the real parser passes slice
// data; the simulation passes the picture libavcodec decoded).
thread_local AVFrame* pending = nullptr;

struct Report {
    ~Report() {
        if (!sim::report_wanted()) return;
        size_t mapped = 0;
        for (auto* d : decoders) mapped += d->mapped.size();
        fprintf(stderr, "gpuworker-sim libnvcuvid: live decoders=%zu parsers=%zu mapped=%zu\n",
                decoders.size(), parsers.size(), mapped);
    }
} report;

#define CHECK_FAIL(name)                                       \
    do {                                                       \
        int e_ = sim::injected("libnvcuvid", name);            \
        if (e_) return (CUresult)e_;                           \
    } while (0)

bool known(Decoder* d) {
    std::lock_guard<std::mutex> g(mu);
    return decoders.count(d) != 0;
}

bool have_context() {
    CUcontext c = nullptr;
    return cuCtxGetCurrent(&c) == CUDA_SUCCESS && c != nullptr;
}

// Displays the oldest waiting picture. Returns false when the callback refused.
bool display_one(Parser* p) {
    CUVIDPARSERDISPINFO disp;
    memset(&disp, 0, sizeof disp);
    disp.picture_index = p->waiting.front().first;
    disp.progressive_frame = 1;
    disp.timestamp = p->waiting.front().second;
    p->waiting.pop_front();
    return p->params.pfnDisplayPicture(p->params.pUserData, &disp) != 0;
}

// The decode surfaces a stream needs, as NVDEC's parser reports them in
// CUVIDEOFORMAT::min_num_decode_surfaces: its reference frames (the DPB, from the SPS) plus
// the pictures held for reordering, plus the one being decoded. It differs from stream to
// stream, so a decoder made for one may be too small for the next (real-gpu-rules.md R3).
int min_surfaces(const AVCodecContext* av) {
    int refs = av->refs > 0 ? av->refs : 1;
    return refs + av->has_b_frames + 1;
}

// Runs the callbacks for one decoded picture: sequence (when the format or the surfaces it
// needs change), decode, then display once `ulMaxDisplayDelay` later pictures were decoded.
// Returns false when a callback refused or the parser ran out of surfaces.
bool deliver(Parser* p, AVFrame* f) {
    int need = min_surfaces(p->av);
    if (!p->width || f->width != p->width || f->height != p->height || need != p->min_surfaces) {
        // A new sequence starts with a keyframe: pictures of the old one are shown first.
        while (!p->waiting.empty())
            if (!display_one(p)) return false;
        CUVIDEOFORMAT fmt;
        memset(&fmt, 0, sizeof fmt);
        fmt.codec = p->params.CodecType;
        fmt.frame_rate.numerator = p->av->framerate.num > 0 ? p->av->framerate.num : 30;
        fmt.frame_rate.denominator = p->av->framerate.den > 0 ? p->av->framerate.den : 1;
        fmt.progressive_sequence = 1;
        fmt.min_num_decode_surfaces = (unsigned char)need;
        fmt.coded_width = (f->width + 15) & ~15;
        fmt.coded_height = (f->height + 15) & ~15;
        fmt.display_area.right = f->width;
        fmt.display_area.bottom = f->height;
        bool yuv420 = f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P;
        fmt.chroma_format = yuv420 ? cudaVideoChromaFormat_420 : cudaVideoChromaFormat_444;
        fmt.bit_depth_luma_minus8 = yuv420 ? 0 : 2;
        fmt.bit_depth_chroma_minus8 = fmt.bit_depth_luma_minus8;
        int n = p->params.pfnSequenceCallback(p->params.pUserData, &fmt);
        if (n == 0) return false;
        // "A value > 1 overrides the parser's DPB size" (dynlink_nvcuvid.h); less than the
        // stream needs and pictures still referenced would be overwritten.
        if (n > 1 && n < need) {
            fprintf(stderr, "sim libnvcuvid: %d decode surfaces for a stream that needs %d\n", n, need);
            return false;
        }
        p->surfaces = n > 1 ? n : (unsigned)need;
        p->width = f->width;
        p->height = f->height;
        p->min_surfaces = need;
    }
    CUVIDPICPARAMS pic;
    memset(&pic, 0, sizeof pic);
    pic.PicWidthInMbs = (f->width + 15) / 16;
    pic.FrameHeightInMbs = (f->height + 15) / 16;
    pic.CurrPicIdx = p->next++ % p->surfaces;
    // A surface still waiting for display cannot take a new picture: with fewer surfaces than
    // the references plus the display delay, the parser runs out (go-livepeer#1009, "No decoder
    // surfaces left").
    for (auto& w : p->waiting)
        if (w.first == pic.CurrPicIdx) {
            fprintf(stderr, "sim libnvcuvid: no decode surface free (%u surfaces, %zu waiting)\n",
                    p->surfaces, p->waiting.size());
            return false;
        }
    pic.intra_pic_flag = f->key_frame ? 1 : 0;
    pic.ref_pic_flag = 1;
    pending = f;
    int ok = p->params.pfnDecodePicture(p->params.pUserData, &pic);
    pending = nullptr;
    if (!ok) return false;
    int64_t ts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
    p->waiting.emplace_back(pic.CurrPicIdx, ts);
    while (p->waiting.size() > p->params.ulMaxDisplayDelay)
        if (!display_one(p)) return false;
    return true;
}
}  // namespace

extern "C" {

CUresult cuvidGetDecoderCaps(CUVIDDECODECAPS* c) {
    CHECK_FAIL("cuvidGetDecoderCaps");
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    bool ok = (c->eCodecType == cudaVideoCodec_H264 || c->eCodecType == cudaVideoCodec_HEVC) &&
              c->eChromaFormat == cudaVideoChromaFormat_420 && c->nBitDepthMinus8 == 0;
    c->bIsSupported = ok;
    c->nNumNVDECs = ok ? 1 : 0;
    c->nOutputFormatMask = ok ? (1 << cudaVideoSurfaceFormat_NV12) : 0;
    c->nMaxWidth = ok ? MAX_SIZE : 0;
    c->nMaxHeight = ok ? MAX_SIZE : 0;
    c->nMaxMBCount = ok ? (MAX_SIZE / 16) * (MAX_SIZE / 16) : 0;
    c->nMinWidth = ok ? 48 : 0;
    c->nMinHeight = ok ? 16 : 0;
    return CUDA_SUCCESS;
}

CUresult cuvidCreateVideoParser(CUvideoparser* out, CUVIDPARSERPARAMS* params) {
    CHECK_FAIL("cuvidCreateVideoParser");
    if (!out || !params || !params->pfnSequenceCallback || !params->pfnDecodePicture ||
        !params->pfnDisplayPicture)
        return CUDA_ERROR_INVALID_VALUE;
    if (params->CodecType != cudaVideoCodec_H264 && params->CodecType != cudaVideoCodec_HEVC)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (params->ulMaxNumDecodeSurfaces == 0) return CUDA_ERROR_INVALID_VALUE;
    auto* p = new Parser();
    p->params = *params;
    const AVCodec* codec = avcodec_find_decoder(
        params->CodecType == cudaVideoCodec_H264 ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC);
    p->av = avcodec_alloc_context3(codec);
    p->av->thread_count = 1;
    if (avcodec_open2(p->av, codec, nullptr) < 0) {
        avcodec_free_context(&p->av);
        delete p;
        return CUDA_ERROR_UNKNOWN;
    }
    p->pkt = av_packet_alloc();
    p->frame = av_frame_alloc();
    std::lock_guard<std::mutex> g(mu);
    parsers.insert(p);
    *out = p;
    return CUDA_SUCCESS;
}

CUresult cuvidParseVideoData(CUvideoparser handle, CUVIDSOURCEDATAPACKET* data) {
    CHECK_FAIL("cuvidParseVideoData");
    auto* p = (Parser*)handle;
    {
        std::lock_guard<std::mutex> g(mu);
        if (!parsers.count(p)) return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!data || (data->payload_size > 0 && !data->payload)) return CUDA_ERROR_INVALID_VALUE;
    if (p->failed) return CUDA_ERROR_UNKNOWN;
    if (data->payload_size > 0) {
        av_packet_unref(p->pkt);
        if (av_new_packet(p->pkt, (int)data->payload_size) < 0) return CUDA_ERROR_OUT_OF_MEMORY;
        memcpy(p->pkt->data, data->payload, data->payload_size);
        p->pkt->pts = (data->flags & CUVID_PKT_TIMESTAMP) ? data->timestamp : AV_NOPTS_VALUE;
        // Bad data is skipped, as NVDEC's parser does; the pictures tell the rest.
        avcodec_send_packet(p->av, p->pkt);
    }
    bool end = data->flags & CUVID_PKT_ENDOFSTREAM;
    if (end) avcodec_send_packet(p->av, nullptr);
    while (avcodec_receive_frame(p->av, p->frame) == 0) {
        bool ok = deliver(p, p->frame);
        av_frame_unref(p->frame);
        if (!ok) {
            p->failed = true;
            return CUDA_ERROR_UNKNOWN;
        }
    }
    if (end) {
        // The end of the stream displays every picture still held back.
        while (!p->waiting.empty())
            if (!display_one(p)) {
                p->failed = true;
                return CUDA_ERROR_UNKNOWN;
            }
        avcodec_flush_buffers(p->av);
    }
    return CUDA_SUCCESS;
}

CUresult cuvidDestroyVideoParser(CUvideoparser handle) {
    CHECK_FAIL("cuvidDestroyVideoParser");
    auto* p = (Parser*)handle;
    std::lock_guard<std::mutex> g(mu);
    if (!parsers.erase(p)) return CUDA_ERROR_INVALID_HANDLE;
    av_packet_free(&p->pkt);
    av_frame_free(&p->frame);
    avcodec_free_context(&p->av);
    delete p;
    return CUDA_SUCCESS;
}

CUresult cuvidCreateDecoder(CUvideodecoder* out, CUVIDDECODECREATEINFO* ci) {
    CHECK_FAIL("cuvidCreateDecoder");
    if (!out || !ci) return CUDA_ERROR_INVALID_VALUE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    if ((ci->CodecType != cudaVideoCodec_H264 && ci->CodecType != cudaVideoCodec_HEVC) ||
        ci->ChromaFormat != cudaVideoChromaFormat_420 ||
        ci->OutputFormat != cudaVideoSurfaceFormat_NV12 || ci->bitDepthMinus8 != 0)
        return CUDA_ERROR_NOT_SUPPORTED;
    if (ci->ulWidth == 0 || ci->ulHeight == 0 || ci->ulWidth > MAX_SIZE ||
        ci->ulHeight > MAX_SIZE || ci->ulMaxWidth < ci->ulWidth || ci->ulMaxHeight < ci->ulHeight ||
        ci->ulNumDecodeSurfaces == 0 || ci->ulNumDecodeSurfaces > 32 ||
        ci->ulNumOutputSurfaces == 0 || ci->ulNumOutputSurfaces > 64 ||
        ci->ulTargetWidth == 0 || ci->ulTargetHeight == 0 ||
        ci->display_area.right > (short)ci->ulWidth || ci->display_area.bottom > (short)ci->ulHeight ||
        ci->DeinterlaceMode != cudaVideoDeinterlaceMode_Weave)
        return CUDA_ERROR_INVALID_VALUE;
    auto* d = new Decoder();
    d->info = *ci;
    d->pitch = (unsigned)((ci->ulTargetWidth + 511) & ~511ul);
    d->surface_bytes = (size_t)d->pitch * (ci->ulTargetHeight + (ci->ulTargetHeight + 1) / 2);
    auto alloc_all = [&](std::vector<CUdeviceptr>& v, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            CUdeviceptr p = 0;
            CUresult r = cuMemAlloc_v2(&p, d->surface_bytes);
            if (r != CUDA_SUCCESS) return r;
            v.push_back(p);
        }
        return CUDA_SUCCESS;
    };
    CUresult r = alloc_all(d->decode, ci->ulNumDecodeSurfaces);
    if (r == CUDA_SUCCESS) r = alloc_all(d->output, ci->ulNumOutputSurfaces);
    if (r != CUDA_SUCCESS) {
        for (auto p : d->decode) cuMemFree_v2(p);
        for (auto p : d->output) cuMemFree_v2(p);
        delete d;
        return r;
    }
    d->decoded.assign(ci->ulNumDecodeSurfaces, false);
    d->corrupt.assign(ci->ulNumDecodeSurfaces, false);
    std::lock_guard<std::mutex> g(mu);
    decoders.insert(d);
    *out = d;
    return CUDA_SUCCESS;
}

CUresult cuvidDestroyDecoder(CUvideodecoder handle) {
    CHECK_FAIL("cuvidDestroyDecoder");
    auto* d = (Decoder*)handle;
    // Like every call on a decoder created without a context lock, it needs the context
    // current (dynlink_cuviddec.h, vidLock).
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    {
        std::lock_guard<std::mutex> g(mu);
        if (!decoders.erase(d)) return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!d->mapped.empty())
        fprintf(stderr, "sim libnvcuvid: decoder destroyed with %zu frames mapped\n", d->mapped.size());
    for (auto p : d->decode) cuMemFree_v2(p);
    for (auto p : d->output) cuMemFree_v2(p);
    delete d;
    return CUDA_SUCCESS;
}

CUresult cuvidDecodePicture(CUvideodecoder handle, CUVIDPICPARAMS* pic) {
    CHECK_FAIL("cuvidDecodePicture");
    auto* d = (Decoder*)handle;
    if (!known(d)) return CUDA_ERROR_INVALID_HANDLE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!pic || !pending || pic->CurrPicIdx < 0 ||
        pic->CurrPicIdx >= (int)d->info.ulNumDecodeSurfaces)
        return CUDA_ERROR_INVALID_VALUE;
    AVFrame* f = pending;
    if ((unsigned long)f->width != d->info.ulTargetWidth ||
        (unsigned long)f->height != d->info.ulTargetHeight)
        return CUDA_ERROR_INVALID_VALUE;
    auto* dst = (unsigned char*)(uintptr_t)d->decode[pic->CurrPicIdx];
    for (int y = 0; y < f->height; ++y)
        memcpy(dst + (size_t)y * d->pitch, f->data[0] + (size_t)y * f->linesize[0], f->width);
    unsigned char* uv = dst + (size_t)d->pitch * f->height;
    int cw = (f->width + 1) / 2, ch = (f->height + 1) / 2;
    for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x) {
            uv[(size_t)y * d->pitch + 2 * x] = f->data[1][(size_t)y * f->linesize[1] + x];
            uv[(size_t)y * d->pitch + 2 * x + 1] = f->data[2][(size_t)y * f->linesize[2] + x];
        }
    d->decoded[pic->CurrPicIdx] = true;
    const char* corrupt = getenv("GPUWORKER_SIM_CORRUPT");
    d->corrupt[pic->CurrPicIdx] = corrupt && atoi(corrupt) == ++d->pictures;
    return CUDA_SUCCESS;
}

CUresult cuvidMapVideoFrame64(CUvideodecoder handle, int idx, unsigned long long* ptr,
                              unsigned int* pitch, CUVIDPROCPARAMS* vpp) {
    CHECK_FAIL("cuvidMapVideoFrame64");
    auto* d = (Decoder*)handle;
    if (!known(d)) return CUDA_ERROR_INVALID_HANDLE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!ptr || !pitch || !vpp || idx < 0 || idx >= (int)d->info.ulNumDecodeSurfaces ||
        !d->decoded[idx])
        return CUDA_ERROR_INVALID_VALUE;
    // Every output surface mapped: the real driver refuses too.
    CUdeviceptr free_out = 0;
    for (auto o : d->output)
        if (!d->mapped.count(o)) {
            free_out = o;
            break;
        }
    if (!free_out) return CUDA_ERROR_INVALID_VALUE;
    // The post-processing into the output surface runs on vpp->output_stream (the legacy
    // stream when null), as a kernel would: its bytes are there once that stream ran.
    struct Copy {
        CUdeviceptr dst, src;
        size_t n;
    };
    auto* c = new Copy{free_out, d->decode[idx], d->surface_bytes};
    int r = gpuworker_sim_enqueue(vpp->output_stream, [](void* a) {
        auto* c = (Copy*)a;
        memcpy((void*)(uintptr_t)c->dst, (void*)(uintptr_t)c->src, c->n);
        delete c;
    }, c);
    if (r != 0) {
        delete c;
        return CUDA_ERROR_INVALID_HANDLE;
    }
    d->mapped.insert(free_out);
    *ptr = free_out;
    *pitch = d->pitch;
    return CUDA_SUCCESS;
}

// What became of the picture in surface idx: decoded, or not (yet). GPUWORKER_SIM_CORRUPT=N
// reports the Nth decoded picture as failed (cudaVideoDecodeStatus_Error), as a corrupt
// slice would.
CUresult cuvidGetDecodeStatus(CUvideodecoder handle, int idx, CUVIDGETDECODESTATUS* st) {
    CHECK_FAIL("cuvidGetDecodeStatus");
    auto* d = (Decoder*)handle;
    if (!known(d)) return CUDA_ERROR_INVALID_HANDLE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!st || idx < 0 || idx >= (int)d->info.ulNumDecodeSurfaces) return CUDA_ERROR_INVALID_VALUE;
    memset(st, 0, sizeof *st);
    st->decodeStatus = !d->decoded[idx] ? cuvidDecodeStatus_Invalid
                       : d->corrupt[idx] ? cuvidDecodeStatus_Error
                                         : cuvidDecodeStatus_Success;
    return CUDA_SUCCESS;
}

CUresult cuvidUnmapVideoFrame64(CUvideodecoder handle, unsigned long long ptr) {
    CHECK_FAIL("cuvidUnmapVideoFrame64");
    auto* d = (Decoder*)handle;
    if (!known(d)) return CUDA_ERROR_INVALID_HANDLE;
    if (!have_context()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!d->mapped.erase(ptr)) return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

}  // extern "C"
