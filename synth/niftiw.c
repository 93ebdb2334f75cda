#include "niftiw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void put16(unsigned char *p, int v)
{
    p[0] = (unsigned char)(v & 0xFF);
    p[1] = (unsigned char)((v >> 8) & 0xFF);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void putf(unsigned char *p, double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}

void niftiw_quatern(const double a[4][4], double q[3], double *qfac, double pix[3])
{
    double r[3][3];
    for (int j = 0; j < 3; j++) {
        double n = sqrt(a[0][j] * a[0][j] + a[1][j] * a[1][j] + a[2][j] * a[2][j]);
        pix[j] = n > 0 ? n : 1;
        for (int i = 0; i < 3; i++)
            r[i][j] = n > 0 ? a[i][j] / n : (i == j);
    }
    double det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
                 r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
                 r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    *qfac = 1;
    if (det < 0) {
        /* a left-handed grid: the quaternion holds the proper rotation and
         * qfac = -1 flips the third axis */
        *qfac = -1;
        for (int i = 0; i < 3; i++)
            r[i][2] = -r[i][2];
    }
    double qa, qb, qc, qd, t = 1 + r[0][0] + r[1][1] + r[2][2];
    if (t > 0.5) {
        qa = 0.5 * sqrt(t);
        qb = 0.25 * (r[2][1] - r[1][2]) / qa;
        qc = 0.25 * (r[0][2] - r[2][0]) / qa;
        qd = 0.25 * (r[1][0] - r[0][1]) / qa;
    } else {
        double xd = 1 + r[0][0] - (r[1][1] + r[2][2]), yd = 1 + r[1][1] - (r[0][0] + r[2][2]),
               zd = 1 + r[2][2] - (r[0][0] + r[1][1]);
        if (xd > 1) {
            qb = 0.5 * sqrt(xd);
            qc = 0.25 * (r[0][1] + r[1][0]) / qb;
            qd = 0.25 * (r[0][2] + r[2][0]) / qb;
            qa = 0.25 * (r[2][1] - r[1][2]) / qb;
        } else if (yd > 1) {
            qc = 0.5 * sqrt(yd);
            qb = 0.25 * (r[0][1] + r[1][0]) / qc;
            qd = 0.25 * (r[1][2] + r[2][1]) / qc;
            qa = 0.25 * (r[0][2] - r[2][0]) / qc;
        } else {
            qd = 0.5 * sqrt(zd);
            qb = 0.25 * (r[0][2] + r[2][0]) / qd;
            qc = 0.25 * (r[1][2] + r[2][1]) / qd;
            qa = 0.25 * (r[1][0] - r[0][1]) / qd;
        }
        if (qa < 0) {
            qb = -qb;
            qc = -qc;
            qd = -qd;
        }
    }
    q[0] = qb;
    q[1] = qc;
    q[2] = qd;
}

int niftiw_encode(const NiftiSpec *s, Buf *out, FvErr *e)
{
    for (int i = 0; i < 3; i++)
        if (s->dim[i] < 1 || s->dim[i] > 32767)
            return err_set(e, FV_EINTERNAL, "nifti writer: dim[%d] = %lld is out of range", i + 1,
                           (long long)s->dim[i]);
    int bpp = s->datatype == NIFTI_UINT8 ? 1 : s->datatype == NIFTI_INT16 ? 2 : 0;
    if (!bpp)
        return err_set(e, FV_EINTERNAL, "nifti writer: datatype %d is not supported", s->datatype);
    unsigned char h[352];
    memset(h, 0, sizeof h);
    put32(h + 0, 348);
    h[38] = 'r';
    put16(h + 40, 3);
    for (int i = 0; i < 3; i++)
        put16(h + 42 + 2 * i, (int)s->dim[i]);
    for (int i = 3; i < 7; i++)
        put16(h + 42 + 2 * i, 1);
    put16(h + 70, s->datatype);
    put16(h + 72, bpp * 8);
    double q[3] = {0, 0, 0}, qfac = 1, pix[3] = {1, 1, 1};
    if (s->header != NIFTI_HDR_BLANK)
        niftiw_quatern(s->affine, q, &qfac, pix);
    putf(h + 76, qfac);
    for (int i = 0; i < 3; i++)
        putf(h + 80 + 4 * i, pix[i]);
    putf(h + 92, 1); /* pixdim[4]: time step, unused */
    size_t esize = 0;
    if (s->ext)
        esize = (s->ext_len + 8 + 15) / 16 * 16;
    putf(h + 108, (double)(352 + esize));
    putf(h + 112, s->scl_slope);
    putf(h + 116, s->scl_inter);
    h[123] = 2 | 8; /* mm, seconds */
    if (s->descrip)
        snprintf((char *)h + 148, 80, "%s", s->descrip);
    int qc = (s->header & NIFTI_HDR_QFORM) ? 1 : 0, sc = (s->header & NIFTI_HDR_SFORM) ? 1 : 0;
    put16(h + 252, qc);
    put16(h + 254, sc ? (qc ? 1 : 2) : 0);
    if (qc) {
        for (int i = 0; i < 3; i++) {
            putf(h + 256 + 4 * i, q[i]);
            putf(h + 268 + 4 * i, s->affine[i][3]);
        }
    }
    if (sc)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                putf(h + 280 + 16 * r + 4 * c, s->affine[r][c]);
    memcpy(h + 344, "n+1", 4);
    h[348] = s->ext ? 1 : 0;
    size_t nvox = (size_t)s->dim[0] * (size_t)s->dim[1] * (size_t)s->dim[2];
    if (buf_reserve(out, sizeof h + esize + nvox * (size_t)bpp))
        return err_set(e, FV_ENOMEM, "nifti writer: out of memory");
    buf_append(out, h, sizeof h);
    if (s->ext) {
        unsigned char eh[8];
        put32(eh, (uint32_t)esize);
        put32(eh + 4, 0);
        buf_append(out, eh, 8);
        buf_append(out, s->ext, s->ext_len);
        static const unsigned char zero[16];
        buf_append(out, zero, esize - 8 - s->ext_len);
    }
    if (bpp == 1)
        buf_append(out, s->data, nvox);
    else {
        /* little-endian regardless of the host */
        const int16_t *v = s->data;
        size_t at = out->len;
        out->len += nvox * 2;
        unsigned char *p = (unsigned char *)out->data + at;
        for (size_t i = 0; i < nvox; i++) {
            uint16_t u = (uint16_t)v[i];
            p[2 * i] = (unsigned char)(u & 0xFF);
            p[2 * i + 1] = (unsigned char)(u >> 8);
        }
        out->data[out->len] = 0;
    }
    if (out->failed)
        return err_set(e, FV_ENOMEM, "nifti writer: out of memory");
    return 0;
}

void niftiw_label_xml(const char *const *names, int n, Buf *out)
{
    buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?> <CaretExtension>  <Date><![CDATA["
                  "2024-01-01T00:00:00]]></Date>   <VolumeInformation Index=\"0\">   <LabelTable>\n");
    for (int i = 1; i < n; i++) {
        if (!names[i])
            continue;
        /* a fixed colour wheel: the colours carry no meaning */
        double rgb[3] = {(i * 37 % 256) / 255.0, (i * 91 % 256) / 255.0, (i * 173 % 256) / 255.0};
        buf_printf(out, "<Label Key=\"%d\" Red=\"%.4f\" Green=\"%.4f\" Blue=\"%.4f\" Alpha=\"1\">"
                        "<![CDATA[%s]]></Label>\n", i, rgb[0], rgb[1], rgb[2], names[i]);
    }
    buf_puts(out, "\n  </LabelTable>  <StudyMetaDataLinkSet>  </StudyMetaDataLinkSet>  "
                  "<VolumeType><![CDATA[Label]]></VolumeType>   </VolumeInformation></CaretExtension>\n");
}
