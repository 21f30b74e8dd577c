"""Regenerates pmm_vectors.txt: an independent big-integer model of the PMM formulas in
shared/dodo-pmm.md (beside the repository) (SafeMath reverts included), run as `python3 gen_pmm_vectors.py > pmm_vectors.txt`."""
ONE=10**18; ONE2=10**36; M=2**256
class Rev(Exception): pass
def chk(x):
    if x>=M or x<0: raise Rev('of')
    return x
def mf(a,b): return chk(a*b)//ONE
def df(a,b):
    if b==0: raise Rev('div0')
    return chk(a*ONE)//b
def dc(a,b):
    if b==0: raise Rev('div0')
    return -(-chk(a*ONE)//b)
def sq(x):
    z=x//2+1; y=x
    while z<y:
        y=z; z=(x//z+z)//2
    return y
def G(V0,V1,V2,i,k):
    if V0==0: raise Rev('TARGET_IS_ZERO')
    if V2>V1: raise Rev('sub')
    fair=chk(i*(V1-V2))
    if k==0: return fair//ONE
    t=df(chk(V0*V0)//V1,V2)
    return chk(chk(ONE-k+mf(k,t))*fair)//ONE2
def T(V1,d,i,k):
    if k==0: return chk(V1+mf(i,d))
    if V1==0: return 0
    ki=chk(4*k*i)
    if ki==0: s=ONE
    elif ki*d<M: s=sq(chk(ki*d//V1+ONE2))
    else: s=sq(chk(chk(ki//V1*d)+ONE2))
    prem=chk(df(s-ONE,2*k)+ONE)
    return mf(V1,prem)
def S(V0,V1,d,i,k):
    if V0==0: raise Rev('TARGET_IS_ZERO')
    if d==0: return 0
    if k==0: return min(mf(i,d),V1)
    if k==ONE:
        idelta=chk(i*d)
        if idelta==0: temp=0
        elif idelta*V1<M: temp=idelta*V1//chk(V0*V0)
        else: temp=chk(chk(chk(d*V1)//V0)*i)//V0
        return chk(V1*temp)//chk(temp+ONE)
    if V1==0: raise Rev('div0')
    p2=chk(chk(chk(k*V0)//V1*V0)+chk(i*d)); p1=chk((ONE-k)*V1)
    if p1>=p2: b=p1-p2; sig=False
    else: b=p2-p1; sig=True
    b//=ONE
    d4=mf(4*(ONE-k), chk(mf(k,V0)*V0))
    root=sq(chk(chk(b*b)+d4))
    if sig:
        num=root-b
        if num==0: raise Rev('ZERO')
    else: num=b+root
    V2=dc(num,2*(ONE-k))
    return 0 if V2>V1 else V1-V2
def adj(st):
    i,k,B,Q,B0,Q0,R=st
    if R==2: Q0=T(Q,B-B0,i,k)
    elif R==1: B0=T(B,Q-Q0,ONE2//i,k)
    return (i,k,B,Q,B0,Q0,R)
def mid(st):
    i,k,B,Q,B0,Q0,R=adj(st)
    if R==2:
        r=df(chk(Q0*Q0)//Q,Q); r=chk(ONE-k+mf(k,r)); return df(i,r)
    r=df(chk(B0*B0)//B,B); r=chk(ONE-k+mf(k,r)); return mf(i,r)
def sellbase(st,a):
    i,k,B,Q,B0,Q0,R=adj(st)
    if R==0: return S(Q0,Q0,a,i,k),2,B0
    if R==2: return S(Q0,Q,a,i,k),2,B0
    bp=B0-B; br=Q-Q0
    assert bp>=0 and br>=0
    if a<bp: return min(G(B0,chk(B+a),B,i,k),br),1,B0
    if a==bp: return br,0,B0
    return chk(br+S(Q0,Q0,a-bp,i,k)),2,B0
def sellquote(st,a):
    i,k,B,Q,B0,Q0,R=adj(st); ii=ONE2//i
    if R==0: return S(B0,B0,a,ii,k),1,Q0
    if R==1: return S(B0,B,a,ii,k),1,Q0
    qp=Q0-Q; br=B-B0
    if a<qp: return min(G(Q0,chk(Q+a),Q,ii,k),br),2,Q0
    if a==qp: return br,0,Q0
    return chk(br+S(B0,B0,a-qp,ii,k)),1,Q0
def fees(x,lp,mt):
    m=mf(x,mt); l=mf(x,lp); return x-l-m,m,l
import random
random.seed(20261129)
def rnd_mag(lo,hi): return random.randint(1,9)*10**random.randint(lo,hi)+random.randint(0,10**random.randint(0,lo))
def rk():
    c=random.random()
    if c<0.1: return 0
    if c<0.2: return ONE
    if c<0.25: return random.randint(1,1000)
    return random.randint(1,ONE-1)
def run(f):
    try:
        r=f(); return r
    except Rev as e: return 'E:'+str(e)
    except AssertionError: return 'E:sub'
    except ZeroDivisionError: return 'E:div0'
lines=[]
def rec(st,amt):
    def fmt(x):
        if isinstance(x,str): return x+' - -'
        return '%d %d %d'%x
    m=run(lambda: mid(st))
    m = m if isinstance(m,str) else str(m)
    lines.append(' '.join(map(str,st))+' %d %s %s %s'%(amt,m,fmt(run(lambda: sellbase(st,amt))),fmt(run(lambda: sellquote(st,amt)))))
def step_dsp(st,sell_base,amt):
    i,k,B,Q,B0,Q0,R=st
    if sell_base:
        g,r,t=sellbase(st,amt); nb=B+amt; nq=Q-g
        if nq<0: raise Rev('sub')
        return (i,k,nb,nq,t if r!=R else B0,Q0,r)
    g,r,t=sellquote(st,amt); nq=Q+amt; nb=B-g
    if nb<0: raise Rev('sub')
    return (i,k,nb,nq,B0,t if r!=R else Q0,r)
while len(lines)<300:
    i=random.choice([ONE, 10**6, 10**30, 2*ONE, 10**36, 1]) if random.random()<0.3 else rnd_mag(0,35)
    i=min(i,10**36)
    k=rk()
    if random.random()<0.35:
        # DVM
        B=rnd_mag(0,28); Q=rnd_mag(0,28) if random.random()<0.9 else 0
        st=(i,k,B,Q,0,0,1)
        amt=random.choice([0,1,rnd_mag(0,28), B//3+1])
        rec(st,amt); continue
    B0=rnd_mag(3,28); Q0=mf(B0,i) if random.random()<0.7 else rnd_mag(3,28)
    if Q0==0: continue
    st=(i,k,B0,Q0,B0,Q0,0)
    for _ in range(random.randint(0,4)):
        sb=random.random()<0.5
        side=st[3] if sb else st[2]
        amt=random.randint(1,max(1,side//random.choice([2,10,1000])))
        try:
            nst=step_dsp(st,sb,amt)
            adj(nst)
            st=nst
        except (Rev,AssertionError,ZeroDivisionError): break
    amt=random.choice([0,1,random.randint(1,max(1,st[2])), random.randint(1,max(1,st[3])), rnd_mag(0,30)])
    rec(st,amt)
import sys
sys.stdout.write('# i k B Q B0 Q0 R amount | mid | sellBase: gross newR newTarget | sellQuote: gross newR newTarget (E:x = revert)\n'+'\n'.join(lines)+'\n')
