// relpos.c — learned relative position keys, --pos rel (see relpos.h).
#include "blocks/relpos.h"

#include <cblas.h>
#include <string.h>

#include "base/check.h"
#include "model/gemm.h"

void relpos_register(relpos_t *r, const model_dims_t *dims, param_table_t *pt, const char *prefix) {
    memset(r, 0, sizeof *r);
    if (dims->pos != POS_REL) return;
    CHECK(dims->rel_reach >= 1);
    r->R = dims->rel_reach;
    r->k = params_add(pt, prefix, "rel_k",
                      (param_spec_t){.shape = {dims->dim / dims->heads, r->R}, .init = INIT_NORMAL, .std = 1.0f,
                                     .decay = 1});
}

void relpos_qr(const relpos_t *r, float *QR, int ldqr, const float *Q, int ldq, int T, int D, int W, float scale) {
    CHECK(W >= 1 && W <= r->R && ldqr >= W);
    // QR (T,W) = scale · Q (T,D) · rel_k[:, 0:W] (D,W; row stride R)
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, W, D, scale, Q, ldq, r->k->data, r->R, 0.0f, QR, ldqr);
}

void relpos_row_grad(float *dQR_row, int W, const float *dS, int d0, int c_lo, int c_hi) {
    memset(dQR_row, 0, (size_t)W * sizeof(float));
    for (int c = c_lo; c <= c_hi; c++) dQR_row[d0 - c] = dS[c];
}

void relpos_dq(const relpos_t *r, float *dQ, int lddq, const float *dQR, int lddqr, int T, int D, int W, float scale) {
    // dQ (T,D) += scale · dQR (T,W) · rel_k[:, 0:W]ᵀ (W,D)
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, D, W, scale, dQR, lddqr, r->k->data, r->R, 1.0f, dQ, lddq);
}

void relpos_dk(relpos_t *r, const float *Q, int ldq, const float *dQR, int lddqr, int N, int D, int W, float scale) {
    // drel_k[:, 0:W] (D,W) += scale · Qᵀ (D,N) · dQR (N,W)
    par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, W, N, scale, Q, ldq, dQR, lddqr, 1.0f, r->k->grad, r->R);
}

void relpos_decode(const relpos_t *r, float *out, const float *q, int D, int W, float scale) {
    CHECK(W >= 1 && W <= r->R);
    // out (W) = scale · rel_k[:, 0:W]ᵀ · q
    cblas_sgemv(CblasRowMajor, CblasTrans, D, W, scale, r->k->data, r->R, q, 1, 0.0f, out, 1);
}
