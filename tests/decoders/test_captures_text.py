# ruff: noqa: E501  (device captures are kept byte for byte, one per line)
"""Real device captures through H02, GPS103 and OsmAnd, none of which built the decoders.

Every capture of Traccar's (traccar/traccar) ``src/test/java/org/traccar/protocol/``
``H02ProtocolDecoderTest.java``, ``Gps103ProtocolDecoderTest.java`` and
``OsmAndProtocolDecoderTest.java`` (testDecodeQuery and testDecodeJson), plus captures
quoted in Traccar issues (H02: traccar#2131, traccar-web#281; OsmAnd: traccar#1664,
#2083, #2372), goes through ``split_frames`` + ``decode_frames`` as ingest calls them.
Traccar's tests hand GPS103 lines over without their ``;`` (its frame decoder strips it),
so one is added; OsmAnd queries are given as the raw query string the HTTP intake passes.

Asserted: nothing raises; every capture splits completely; each frame becomes a fix, an
ignored count, a reply, or a reject with a code; what Traccar verifies as a position is
at least one fix, or a rejection listed in ``DELIBERATE`` with the reason; the time,
validity, coordinates and speed Traccar's test (or the issue's log) states are met.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from decoders import gps103, h02, osmand
from decoders.model import Decoded, Fix, Session
from tests.decoders.invariants import check_fixes

# "pos": Traccar verifyPosition (or verifyAttribute on a frame carrying a position);
# "other": verifyNull, verifyNotNull or verifyAttributes on a frame with no position.
H02 = r"""
pos *HQ,5905101893,V1,105759,A,37573392,S,145037022,E,000.00,173,280122,FF7FFBFF,,,9059e2c,8232,4#
pos *HQ,4970105243,V1,104000,A,2235.1777,N,11357.8913,E,000.27,235,130721,FFFFFBFF,460,11,d18e105,7752,6#
other *HQ,135790246811220,HTBT,100#
pos *HQ,9180271064,V5,091233,V,2348.8912,N,09021.3302,E,000.00,000,051219,FFFFBBFF,470,01,21019,2033,2921283#
pos 2491802711800850240512192350143206090249758e000001ffffbbff00bdf0900000000001d60161cc4b9a35
other *HQ,135790246811220,HTBT#
pos *HQ,865205035331981,V1,132926,A,1935.3933,N,07920.4134,E,  3.34,342,280519,FFFFFFFF#
pos 24702802061601234020031910125482600612695044000000ffffbbff000000000000000001760d04e2c9934d
other *hq,356327081001239,VP1,V,470,002,92,3565,0Y92,19433,30Y92,1340,29#
pos 2435248308419329301047591808172627335900074412294E024138FEFFFFFFFF01120064BA73005ECC
pos *HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,4,080918,EEE7FBDF,4261193,0#
pos *HQ,353505221264507,V2,100220,0,5238.26259,N,00507.33983,E,0.25,0,280917,FFFFFFFF,cc,28,  db,d75b#
pos *HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#
pos *HQ,353505221264507,VI1,075146,0,5238.25900,N,00507.33429,E,0.54,0,250917,FFFFFFFF,cc,28,  db,d75b#
other *HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#
pos *hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,0.0000,080917#
pos *HQ,4209951296,V19,214452,A,5201.0178,N,01830.5029,E,000.00,000,200417,,195.63.13.195,89480610500392633029,BFFFFBFF#
pos *hq,356327080425330,VP1,A,2702.7215,S,15251.9309,E,0.62,0.0000,050917#
other *HQ,356327080425330,XT,1,100#
other *HQ,353111080001055,V3,044855,28403,01,001450,011473,158,-62,0292,0,X,030817,FFFFFBFF#
pos 2442091341332059572807175137358006000183640e000000fffffbfdff001f080000000000ea1e0000000021
other *HQ,4109198974,#
other *HQ,1700086468,LINK,180902,15,0,84,0,0,240517,FFFFFBFF#
other *HQ,355488020882405,V3,095426,74001,01,010278,045142,128,-92,02DE,0,X,090517,FFFFFBFF#
other *HQ,355488020882405,V3,095426,74001,04,010278,045142,128,-92,010278,026311,125,,010278,026582,125,,010278,028322,119,,02DD,0,X,090517,FFFFFBFF#
pos *HQ,4109179024,V19,181519,V,3853.2587,S,06205.9175,W,000.00,000,090217,,5492932630888,8954315265044716555?,FFFFFBFF#
pos *HQ,8161289587,V1,181933,A,5444.3994,N,02516.3844,E,000.05,000,090317,FFFFBBFF,246,03,00002,41565#
pos 2421305109380127171003170520046500100286297e003085ffffdfffff03440069129344006400001151415a20
pos *HQ,2130510938,V1,012632,A,0520.0663,N,10028.6324,E,0.286,023,100317,FFFFDFFF,69129336,0,100.0,18,5141,5A20#
pos *HQ,4210209006,V1,201812,A,2608.9437,N,08016.2521,W,000.80,000,150317,EFE7F9FF,310,260,0,0,6#
pos *HQ,4210209006,V1,201844,A,2608.9437,N,08016.2521,W,000.80,000,150317,FFFFF9FF,310,260,0,0,6#
pos *HQ,4109179024,V19,103732,V,3853.2770,S,06205.8678,W,000.00,000,100217,,5492932630888,8954314165044716555?,FFFFFBFF#
other *HQ,4109179024,NBR,103732,722,310,0,6,8106,32010,23,8101,22007,25,8106,12010,23,8106,22105,22,8101,22012,16,8106,42010,5,100217,FFFFFBFF,5#
other *HQ,355488020930796,V3,002339,62160,06,024852,035421,148,0,024852,035425,143,,022251,036482,137,,024852,000335,133,,024852,031751,133,,024852,035423,133,,02A1,0,X,010104,EFE7FBFF#
pos *HQ,4106012736,V1,224434,A,1827.3855,N,06705.7577,W,000.00,000,100117,FFFFFBFF,310,260,49101,1753,5#
other *HQ,4208150188,NBR,210249,260,6,0,7,1014,50675,37,1014,50633,27,1014,17933,18,1014,17231,15,1014,50632,12,1014,13211,11,1014,17031,10,281216,FFFFFBFF,2#
other *HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#
other *HQ,1600068812,NBR,141335,262,02,255,6,431,17003,26,431,11101,13,431,6353,13,431,22172,13,431,11093,13,431,60861,10,151216,FFFFFBFF#
pos *HQ,353588020068342,V1,084436,A,3257.01525,N,00655.03865,W,57.78,40,011216,FFFBFFFF,25c,a, 154,b04c#
other *HQ,356803210091319,BS,,2d4,a,1b63,1969,26,1b63,10b2,31,0,0,25,,ffffffff,60#
other *HQ,1400046168,NBR,160169,460,0,1,4,9338,3692,150,9338,3691,145,9338,3690,140,9338,3692,139,180813,FFFFFBFF#
other *HQ,1600068860,NBR,120156,262,03,255,6,802,54702,46,802,5032,37,802,54782,30,802,5052,28,802,54712,12,802,5042,12,081116,FFFFFBFF#
other *HQ,1600068860,NBR,110326,262,03,255,6,802,23152,23,812,49449,14,802,35382,13,802,35402,11,812,56622,09,802,23132,04,081116,FFFFFBFF#
other *HQ,1600068860,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#
other *HQ,355488020533263,V3,121536,65501,04,000152,014001,156,-64,000161,010642,138,,000152,014003,129,,000152,013973,126,,02E4,0,X,071116,FFFFFBFF#
pos *HQ,4209917484,V19,093043,V,5052.9749,N,00426.4322,E,000.00,000,130916,,0032475874141,8944538530000543700F,FFFFFBFF#
pos *HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF,125,194,  64,d3#
pos *HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#
other *HQ,1451316451,NBR,112315,724,10,2,2,215,2135,123,215,2131,121,011215,FFFFFFFF#
pos *HQ,1451316485,V1,121557,A,-23-3.3408,S,-48-2.8926,W,0.1,158,241115,FFFFFFFF#
pos *HQ,1451316485,V1,121557,A,-23-35.3408,S,-48-2.8926,W,0.1,158,241115,FFFFFFFF#
pos *HQ,355488020119695,V1,050418,,2827.61232,N,07703.84822,E,0.00,0,031015,FFFEFBFF#
pos *HQ,1451316409,V1,030149,A,-23-29.0095,S,-46-51.5852,W,2.4,065,070315,FFFFFFFF#
other *HQ,353588020068342,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff,000106,000002,000203,004c87,16#
pos *HQ,3800008786,V1,062507,V,3048.2437,N,03058.5617,E,000.00,000,250413,FFFFFBFF#
pos *HQ,4300256455,V1,111817,A,1935.5128,N,04656.3243,E,0.00,100,170913,FFE7FBFF#
pos *HQ,123456789012345,V1,155850,A,5214.5346,N,2117.4683,E,0.00,270.90,131012,ffffffff,000000,000000,000000,000000#
pos *HQ,353588010001689,V1,221116,A,1548.8220,S,4753.1679,W,0.00,0.00,300413,ffffffff,0002d4,000004,0001cd,000047#
pos *HQ,354188045498669,V1,195200,A,701.8915,S,3450.3399,W,0.00,205.70,050213,ffffffff,000243,000000,000000#
pos *HQ,2705171109,V1,213324,A,5002.5849,N,01433.7822,E,0.00,000,140613,FFFFFFFF#
pos *TH,2020916012,V1,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#\r\n
pos *TH,2020916012,V4,S17,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S14,100,10,1,3,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S20,ERROR,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S20,DONE,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,F7FFFBFF#
pos *TH,2020916012,V4,R8,ERROR,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S23,165.165.33.250:8800,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S24,thit.gd,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#
pos *TH,2020916012,V4,S1,OK,pass_word,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFD#
pos *HQ,353588020068342,V1,062840,A,5241.1249,N,954.9490,E,0.00,0.00,231013,ffffffff,000106,000002,000203,004c87,24#
pos *HQ,353505220903211,V1,075228,A,5227.5039,N,01032.8443,E,0.00,0,231013,FFFBFFFF,106,14, 201,2173#
pos *HQ,353505220903211,V1,140817,A,5239.3538,N,01003.5292,E,21.03,312,221013,FFFBFFFF,106,14, 203,1cd#
pos *HQ,356823035368767,V1,083618,A,0955.6392,N,07809.0796,E,0.00,0,070414,FFFBFFFF,194,3b5,  71,c9a9#
other *HQ,8401016597,BASE,152609,0,0,0,0,211014,FFFFFFFF#
pos 2441060116601245431311165035313006004318210e000000fffffbffff0024
pos 24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f
pos 2427051711092133391406135002584900014337822e000000ffffffffff0000
pos 2427051711092134091406135002584900014337822e000000ffffffffff0000
pos 2410307310010503162209022212874500113466574C014028fffffbffff0000
pos 2441090013450831250401145047888000008554650e000000fffff9ffff001006000000000106020299109c01
pos 24270517030820321418041423307879000463213792000056fffff9ffff0000
pos 2441091144271222470112142233983006114026520E000000FFFFFBFFFF0014060000000001CC00262B0F170A
pos 24971305007205201916101533335008000073206976000000effffbffff000252776566060000000000000000000049
pos *HQ,355488020793974,V1,000333,V,1647.53574,N,09607.41785,E,0.00,0,010914,EFE7FBFF#\r\n
other *HQ,355488020793974,XT,V,0,0#\r\n
pos *HQ,355488020793974,V1,093300,,1647.53574,N,09607.41785,E,0.00,0,200716,EFE6FBFF#\r\n
pos *HQ,353505620301047,V1,093235,A,0506.3415,N,00722.3332,E,0.00,0,140416,FFFFFFEF,26d,12f,3f5a,ada3# \r\n*HQ,353505620301047,V1,093250,A,0506.3415,N,00722.3332,E,0.00,0,140416,FFFFFFEF,26d,12f,3f5a,ada3# \r\n
"""

GPS103 = r"""
pos imei:864035050002451,tracker,201223064947,,F,064947,A,1935.70640,N,09859.94436,W,0.025,;
pos imei:760112011448012,001,2001151918,,F,191833.000,A,6136.6174,N,2126.9901,E,0.00,202.6,-0.1,1,,,,20;
pos imei:868683023212255,tracker,190205084503,,F,064459.000,A,4915.1221,N,01634.5655,E,3.91,83.95;
pos imei:864180034124375,vt14,190116192753,,F,172750.000,A,3649.2186,N,00235.8411,W,0.00,0,,0,0,51.93%,,+22;
other imei:864180034124375,vr,0c00fa011ea05a03d726977103ad0034c98ef49e6d303fffd1c8361303f2dbb0fa530d8ca3930be3e94f4110145c7029a507a0a00028f4a70514c05c500503170334b400531971cad002ab7634f001a4027949c8e541ea47f853bca2f961ba427ab1e290089197711c485e4f6e82ad0d1ee8f25573eed4af60284f6935bb7ef2307f1dc3f4355bbf3f90a607ffd2e5fcc6c60310be80f152dbca54ed53147fed3ae7fa1fe54809e45330fdedc993d073b7f2a6340a00d8cabeb9a4980c68900e5cb1f6e29aab9e00fc334012a5a5c32e5227c7b21a9a2d35dc02cdb49edb189fe545ec058fec7565e667cfa08b1fccd34686e4f12003dd7ffaf4b980957440bd595beb53269bb082a517dd570693604cb6299cb1663f5a9d608e3e42807d71cd002d206028011e50aa49381513494011349cd2092803ffd3d031f154ef11bc86d870781f8679a90302540adc545c55a00e28c8a602e47ad2e46680133cd19e6800cd1cf4a0063293ce695188e0d20265e58559305c3ffcb2948eca10d20278adb50518890c40f5ed9a5fece941ccb29cfd19ff00c2a6e860d6471c7da1cffb3b507eb9aaafa3dc4a4909b7fdf6c9fd28b88fffd4ca5d06e7b94152af87a53f7a7403d949a8e60265f0eaff0014ee7e8807f5a99340857abcadf881fd2973013a6936f1f48d4ffbc01fe95652dd63fba00fa521926d1de8e07a51600dc3d01d00;
pos imei:868683026321020,T:+11,181217080050,,F,080047.000,A,3227.3057,N,11649.4754,W,0.00,0,,0,0,0.00%,,+11;
pos imei:868683026321020,tracker,181217080106,,F,080102.000,A,3227.3057,N,11649.4754,W,0.00,0,,0,0,0.00%,0,+11;
pos imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-33.42317,-70.61930,067,229,0674,1.00,08,0,1,---,*
pos imei:861359038609986,Equipo 1,---,------,----,214812,241018,14,0,-33.42317,-70.61930,000,000,0000,99.9,00,0,1,---,*
other imei:123451234512345,L,*
other imei:868683027758113,OBD,180905200218,,,,0,0,0.39%,70,9.41%,494,0.00,P0137,P0430,,;
pos imei:353451044508750,001,0809231929,13554900601,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,30.1,65.43,1,0,10.5%,0.0%,28;
pos imei:864180036029895,acc on,180508145653,,F,065645.000,A,4729.1497,N,01904.2342,E,0.00,0,,1,,0.00%,,;
other imei:864895030279986,ac alarm,180404174252,,L,,,296a,,51f7,,,
other imei:359710048977327,OBD,180301094003,5000000,0.00,0.00,98,18,68.63%,55,25.10%,1368,14.24,,,,;
other imei:862106025092216,OBD,170605095949,195874,,370.8,808,066,30.0%,+87,13.0%,02444,14.3,,,,;
other imei:868683027825532,OBD,170613203014,,,,0,0,0.00%,0,0.00%,0,0.00,,,,;
other imei:862106025092216,OBD,170612165656,196043,,145803.9,,000,0.0%,+,0.0%,00000,12.6,,,,;
pos imei:353451044508750,DTC,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,30.1,,1,0,10.5%,P0021,;
pos imei:353451044508750,oil1,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,,,51.6,41.7,;
pos imei:353451044508750,oil2,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,,,51.6,41.7,;
pos imei:353451044508750,oil 51.67,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,;
pos imei:353451044508750,T:+28.0,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,;
pos imei:353451044508750,bonnet alarm,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,;
pos imei:353451044508750,footbrake alarm,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,;
pos imei:862106021237716,ac alarm,1611291645,,F,204457.000,A,1010.2783,N,06441.0274,W,0.00,,;
other imei:359710049057798,OBD,161003192752,1785,,,0,54,96.47%,75,20.00%,1892,0.00,P0134,P0571,,;
other imei:359710049090138,OBD,160629022949,51442,0.00,15.88,5632,122,40.39%,95,0.00%,2101,13.80,,,,;
pos imei:359710049090138,tracker,160629022948,,F,182949.000,A,4043.8839,N,11328.8029,W,65.26,271.82,,1,0,31.37%,51442,;
pos imei:359710049042014,001,160615040011,,F,040011.000,A,2833.0957,N,07711.9465,E,0.01,215.33,,0,,,,;
other imei:359710049028435,OBD,160316053657,70430,,,0,49,60.00%,46,19.22%,859,0.00,U1108,,,;
pos 359769031878322imei:359769031878322,tracker,1602160718,2,F,221811.000,A,1655.2193,S,14546.6722,E,0.00,,
other imei:865328021049167,OBD,141118115036,,,0.0,,000,0.0%,+,0.0%,00000,,,,,
other imei:359710049032874,OBD,160208152900,13555,,,45,0,24.71%,35,13.73%,1230,14.13,U1108,,,
other imei:359710049064398,OBD,160101035156,17887,0.00,17.06,0,0,0.00%,0,0.00%,16383,10.82,,,,
pos imei:868683020235846,rfid,160202091347,49121185,F,011344.000,A,0447.7273,N,07538.9934,W,0.00,0,,0,0,0.00%,,
other imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,
other imei:359710041100000,tracker,000000000,,L,,,fa8,,c9af,,,,,0,0,0.00%,,
other imei:863070016871385,tracker,0000000119,,L,,,0FB6,,CB5D,,,
pos imei:359710045559474,tracker,151030080103,,F,000101.000,A,5443.3834,N,02512.9071,E,0.00,0;
pos imei:359710049092324,tracker,151027025958,,F,235957.000,A,2429.5156,N,04424.5828,E,0.01,27.91,,0,0,,,;
pos imei:865328021058861,tracker,151027041419,,F,011531.000,A,6020.2979,N,02506.1940,E,0.49,113.30,,0,0,0.0%,,;
other ##,imei:359586015829802,A
other 359586015829802
other imei:359586015829802,tracker,000000000,13554900601,L,;
pos imei:869039001186913,tracker,1308282156,0,F,215630.000,A,5602.11015,N,9246.30767,E,1.4,,175.9,
pos imei:359710040656622,tracker,13/02/27 23:40,,F,125952.000,A,3450.9430,S,13828.6753,E,0.00,0
pos imei:359710040565419,tracker,13/05/25 14:23,,F,062209.000,A,0626.0411,N,10149.3904,E,0.00,0
pos imei:353451047570260,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,
pos imei:359587016817564,tracker,1301251602,,F,080251.000,A,3223.5832,N,11058.9449,W,0.03,
pos imei:359587016817564,tracker,1301251602,,F,080251.000,A,3223.5832,N,11058.9449,W,,
pos imei:012497000208821,tracker,1301080525,,F,212511.000,A,2228.5279,S,06855.6328,W,18.62,268.98,
pos imei:012497000208821,tracker,1301072224,,F,142411.077,A,2227.0739,S,06855.2912,,0,0,
pos imei:012497000431811,tracker,1210260609,,F,220925.000,A,0845.5500,N,07024.7673,W,0.00,,
pos imei:100000000000000,help me,1004171910,,F,010203.000,A,0102.0003,N,00102.0003,E,1.02,
pos imei:353451040164707,tracker,1105182344,+36304665439,F,214418.000,A,4804.2222,N,01916.7593,E,0.37,
pos imei:353451042861763,tracker,1106132241,,F,144114.000,A,2301.9052,S,04909.3676,W,0.13,
pos imei:359587010124900,tracker,0809231929,13554900601,F,112909.397,A,2234.4669,N,11354.3287,E,0.11,321.53,
pos imei:353451049926460,tracker,1208042043,123456 99008026,F,124336.000,A,3509.8668,N,03322.7636,E,0.00,,
pos imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,
pos imei:359586015829802,low battery,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,
pos imei:359586015829802,stockade,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,
pos imei:359586015829802,move,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,
pos imei:359586015829802,speed,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,
pos imei:863070010423167,tracker,1211051840,,F,104000.000,A,2220.6483,N,11407.6377,,0,0,
pos imei:863070010423167,tracker,1211051951,63360926,F,115123.000,A,2220.6322,N,11407.5313,E,0.00,,
pos imei:863070010423167,tracker,1211060621,,F,062152.000,A,2220.6914,N,11407.5506,E,15.85,347.84,
pos imei:863070012698733,tracker,1303092334,,F,193427.000,A,5139.0369,N,03907.2791,E,0.00,,
pos imei:869039001186913,tracker,130925065533,0,F,065533.000,A,5604.11015,N,9232.12238,E,0.0,,329.0,
pos imei:359710041641581,acc alarm,1402231159,,F,065907.000,A,2456.2591,N,06708.8335,E,7.53,76.10,,1,0,0.03%,,
pos imei:313009071131684,tracker,1403211928,,F,112817.000,A,0610.1133,N,00116.5840,E,0.00,,,0,0,0.0,0.0,
pos imei:866989771979791,tracker,140527055653,,F,215653.00,A,5050.33113,N,00336.98783,E,0.066,0
pos imei:353552045375005,tracker,150401165832,61.0,F,31.0,A,1050.73696,N,10636.49489,E,8.0,,22.0,
pos imei:353552045403597,tracker,150420050648,53.0,F,0.0,A,N,5306.64155,E,00700.77848,0.0,,1.0,;
pos imei:353552045403597,tracker,150420051153,53.0,F,0.0,A,5306.64155,N,00700.77848,E,0.0,,1.0,;
pos imei:359710047424644,tracker,150506224036,,F,154037.000,A,0335.2785,N,09841.1543,E,3.03,337.54,,0,0,45.16%,,;
pos imei:865328023776874,acc off,150619152221,,F,072218.000,A,5439.8489,N,02518.5945,E,0.00,,,1,1,0.0,0.0,23.0,;
"""

OSMAND = r"""
other id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70
other timestamp=1377177267&lat=60.0&lon=30.0
pos id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0
pos id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0
pos lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681
pos id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0
pos id=123456&timestamp=1377177267&lat=60.0&lon=30.0
pos lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456
pos id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87
pos id=123456&timestamp=1377177267&location=60.0,30.0
pos id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24
pos {"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}
pos {"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},"device_id":"658765"}
pos {"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"8737767034"}
pos id=863071016800770&timestamp=2016-01-15%2021:41:18.000&lat=-26.619913&lon=152.859238&speed=0.72&altitude=433.10&heading=108.42&hdop=81&sat=11&batt=11.43&ignition=OFF
pos id=535341&timestamp=1467849808&lat=13.878210000000001&lon=100.57468833333333&speed=0.0&bearing=227.5&altitude=14.1&batt=100.0
pos id=43628&timestamp=1475564111&lat=17.724067&lon=83.3186&speed=0&bearing=0.0&altitude=0.0&batt=43628.0
"""

# Positions Traccar accepts that we reject on purpose (a pure decoder has no clock and no
# last position): a substring of the capture -> the reject code.
DELIBERATE = {
    "*HQ,,V1,173212": "no_identity",  # empty id, fresh connection (decodes on a named one)
    "VP1,A,2702.7245": "no_time",  # VP1 has a date but no time of day
    "VP1,A,2702.7215": "no_time",
    "V1,,V,4605.75732": "no_date",  # empty time and date (Traccar: server time)
    "F,31.0,A": "no_time",  # UTC field is no time of day; Traccar stores local time as UTC
    "150420050648,53.0,F,0.0": "no_time",
    "150420051153,53.0,F,0.0": "no_time",
    "vacc=0&hacc=0": "no_time",  # no timestamp (Traccar: server time)
    "861001000719969&lat=41.666667": "no_time",
}

# Stated by Traccar's test (position(...)) or the log, or worked out from the
# document for the time folding: substring -> (UTC time, valid, lat, lon, speed km/h).
STATED: dict[str, tuple[str, bool, float, float, float | None]] = {
    "V1,164549,A,0956.3869": ("2015-12-22T16:45:49", True, 9.93978, -84.11178, 0.0),
    "V1,050418,,2827.61232": ("2015-10-03T05:04:18", False, 28.46021, 77.06414, 0.0),
    "V1,030149,A,-23-29.0095": ("2015-03-07T03:01:49", True, -23.48349, -46.85975, 4.4448),
    "244106000826215321": ("2015-08-31T21:53:21", True, 4.69898, -74.06971, 0.0),
    "V1,000333,V,1647.53574": ("2014-09-01T00:03:33", False, 16.79226, 96.12363, 0.0),
    "V1,093300,,1647.53574": ("2016-07-20T09:33:00", False, 16.79226, 96.12363, 0.0),
    "V1,093235,A,0506.3415": ("2016-04-14T09:32:35", True, 5.10569, 7.37222, 0.0),
    "V4,S17,130305,050316": ("2002-09-22T05:03:16", True, 22.21458, 113.77762, 26.44656),
    "151030080103,,F,000101.000": ("2015-10-30T00:01:01", True, 54.72306, 25.21512, 0.0),
    "151027025958,,F,235957.000": ("2015-10-26T23:59:57", True, 24.49193, 44.40971, 0.01852),
    "151027041419,,F,011531.000": ("2015-10-27T01:15:31", True, 60.33830, 25.10323, 0.90748),
    "1602160718,2,F,221811.000": ("2016-02-15T22:18:11", True, -16.92032, 145.77787, 0.0),
    "13/02/27 23:40,,F,125952.000": ("2013-02-27T12:59:52", True, -34.84905, 138.47792, 0.0),
    "1301080525,,F,212511.000": ("2013-01-07T21:25:11", True, -22.47547, -68.92721, 34.48424),
    "Equipo 1,---,------,----,214734": ("2018-10-24T21:47:34", True, -33.42317, -70.6193, 67.0),
    "timestamp=2016-01-27T18%3A55%3A47Z": ("2016-01-27T18:55:47", True, 42.06288, -88.23412, 0.0),
    "timestamp=1442068686579": ("2015-09-12T14:38:06.579", True, 42.06288, -88.23412, 0.0),
    "2014-06-04+09%3A10%3A11": ("2014-06-04T09:10:11", True, 49.60688, 6.15788, 0.0),
    "speed=40&ignition=true": ("2017-09-07T05:56:50", True, 40.72329, -74.00614, 74.08),
    '"speed":18.67': ("2021-07-21T08:06:34.444", True, -6.11481, 106.6837, 67.212),
    '"speed":-1,"longitude"': ("2025-05-09T04:11:30.579", True, 37.78583, -122.40642, None),
    "2016-01-15%2021:41:18.000": ("2016-01-15T21:41:18", True, -26.61991, 152.85924, 1.33344),
    "timestamp=1467849808": ("2016-07-07T00:03:28", True, 13.87821, 100.57469, 0.0),
}


@dataclass(frozen=True)
class Capture:
    protocol: str
    verdict: str  # "pos" or "other", as Traccar's test treats the message
    message: bytes


def _parse(protocol: str, block: str) -> list[Capture]:
    captures = []
    for line in block.strip().splitlines():
        verdict, text = line.split(" ", 1)
        text = text.replace("\\r\\n", "\r\n")
        if protocol == "h02" and text[0] != "*":
            data = bytes.fromhex(text)
        elif protocol == "gps103" and not text.endswith((";", "*")):
            data = (text + ";").encode()
        else:
            data = text.encode()
        captures.append(Capture(protocol, verdict, data))
    return captures


CAPTURES = _parse("h02", H02) + _parse("gps103", GPS103) + _parse("osmand", OSMAND)
CODECS = {"h02": h02, "gps103": gps103, "osmand": osmand}


def _run(cap: Capture, session: Session | None = None) -> tuple[list[bytes], Decoded]:
    codec = CODECS[cap.protocol]
    stream = cap.message + b"\n" if cap.protocol == "osmand" else cap.message
    frames, rest = codec.split_frames(stream)
    assert rest == b"", rest
    out = codec.decode_frames(frames, session=session or Session())
    check_fixes(out)
    return frames, out


def _has(cap: Capture, key: str) -> bool:
    """``key`` is in the capture's text, or in its hex for a binary frame."""
    return key.encode() in cap.message or key.lower() in cap.message.hex()


def _find(key: str) -> Capture:
    return next(c for c in CAPTURES if _has(c, key))


def _match(table: Mapping[str, object], cap: Capture) -> list[str]:
    return [key for key in table if _has(cap, key)]


def test_tables_name_real_captures() -> None:
    for table in (DELIBERATE, STATED):
        for key in table:
            assert sum(_has(c, key) for c in CAPTURES) == 1, key
    counts = {p: sum(c.protocol == p for c in CAPTURES) for p in CODECS}
    assert counts == {"h02": 87, "gps103": 77, "osmand": 17}  # Traccar's tests and issues


@pytest.mark.parametrize("cap", CAPTURES, ids=lambda c: f"{c.protocol}-{c.message[:24]!r}")
def test_every_capture_is_framed_and_accounted_for(cap: Capture) -> None:
    frames, out = _run(cap)
    outcomes = len(out.fixes) + out.ignored + len(out.rejects)
    assert frames and (outcomes == len(frames) or (out.replies and outcomes == 0)), out
    deliberate = _match(DELIBERATE, cap)
    if deliberate:
        assert [r.code for r in out.rejects] == [DELIBERATE[deliberate[0]]], out.rejects
        assert len(out.fixes) == 0
    elif cap.verdict == "pos":
        assert len(out.fixes) == len(frames) and not out.rejects, out.rejects
        assert out.device_id is not None and _has(cap, out.device_id)


@pytest.mark.parametrize("key", list(STATED))
def test_stated_time_coordinates_and_speed(key: str) -> None:
    when, valid, lat, lon, speed = STATED[key]
    fix: Fix = _run(_find(key))[1].fix_list()[0]
    assert fix.fix_time == datetime.fromisoformat(when).replace(tzinfo=UTC)
    assert fix.valid is valid
    assert abs(fix.lat - lat) <= 1e-5 and abs(fix.lon - lon) <= 1e-5, (fix.lat, fix.lon)
    if speed is None:
        assert fix.speed_kmh is None
    else:
        assert fix.speed_kmh is not None and math.isclose(fix.speed_kmh, speed, abs_tol=1e-4)


def test_traccar_attribute_expectations() -> None:
    """testDecodeStatus's status words, and the GPS103 course Traccar asserts."""
    for key, status in [
        ("V1,213324,A,5002.5849", 0xFFFFFFFF),
        ("2441091144271222470112", 0xFFFFFBFF),
        ("V1,164549,A,0956.3869", 0xFFFFFBFF),
    ]:
        assert _run(_find(key))[1].fix_list()[0].attributes["status"] == status
    assert _run(_find(",3.91,83.95;"))[1].fix_list()[0].course_deg == 83.95


def test_empty_h02_id_uses_the_connections_device() -> None:
    _, out = _run(_find("*HQ,,V1"), Session(device_id="4210051415"))
    (fix,) = out.fix_list()
    assert out.rejects == () and fix.device_id == "4210051415"
    assert abs(fix.lat + 22.42981) <= 1e-5 and abs(fix.lon - 28.48650) <= 1e-5


@pytest.mark.parametrize("protocol", ["h02", "gps103"])
def test_captures_back_to_back_frame_as_they_do_alone(protocol: str) -> None:
    """One TCP stream of every capture (each read ending at a capture's end) splits into
    the same frames as the captures one by one: no frame borrows from its neighbour."""
    caps = [c for c in CAPTURES if c.protocol == protocol]
    codec = CODECS[protocol]
    alone = [f for c in caps for f in codec.split_frames(c.message)[0]]
    streamed: list[bytes] = []
    rest = b""
    for c in caps:
        frames, rest = codec.split_frames(rest + c.message)
        streamed += frames
    assert rest == b"" and streamed == alone
    whole, tail = codec.split_frames(b"".join(c.message for c in caps))
    assert tail == b"" and whole == alone
